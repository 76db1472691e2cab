"""tests/lua/test_import.py on the 3-primary cluster."""

from tests.lua.test_import import *  # noqa: F403
