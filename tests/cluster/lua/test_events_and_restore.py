"""tests/lua/test_events_and_restore.py on the 3-primary cluster."""

from tests.lua.test_events_and_restore import *  # noqa: F403
