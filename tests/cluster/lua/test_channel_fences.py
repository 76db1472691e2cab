"""tests/lua/test_channel_fences.py on the 3-primary cluster."""

from tests.lua.test_channel_fences import *  # noqa: F403
