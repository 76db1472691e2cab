"""tests/integration/test_sourcing_crash.py on a cluster of its own."""

from tests.integration.test_sourcing_crash import *  # noqa: F403
