"""tests/lua/test_ratelimit_script.py on the 3-primary cluster."""

from tests.lua.test_ratelimit_script import *  # noqa: F403
