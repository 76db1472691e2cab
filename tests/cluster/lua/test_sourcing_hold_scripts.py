"""tests/lua/test_sourcing_hold_scripts.py on the 3-primary cluster."""

from tests.lua.test_sourcing_hold_scripts import *  # noqa: F403
