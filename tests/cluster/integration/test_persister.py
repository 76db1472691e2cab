"""tests/integration/test_persister.py on a cluster of its own."""

from tests.integration.test_persister import *  # noqa: F403
