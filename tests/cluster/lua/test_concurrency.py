"""tests/lua/test_concurrency.py on the 3-primary cluster."""

from tests.lua.test_concurrency import *  # noqa: F403
