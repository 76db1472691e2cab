"""tests/lua/test_state_scripts.py on the 3-primary cluster."""

from tests.lua.test_state_scripts import *  # noqa: F403
