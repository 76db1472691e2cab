"""tests/integration/test_supply_rebuild.py on a cluster of its own."""

from tests.integration.test_supply_rebuild import *  # noqa: F403
