"""tests/lua/test_reservation_scripts.py on the 3-primary cluster."""

from tests.lua.test_reservation_scripts import *  # noqa: F403
