"""tests/lua/test_reservation_limits.py on the 3-primary cluster."""

from tests.lua.test_reservation_limits import *  # noqa: F403
