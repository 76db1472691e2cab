"""tests/lua/test_quantity_caps.py on the 3-primary cluster."""

from tests.lua.test_quantity_caps import *  # noqa: F403
