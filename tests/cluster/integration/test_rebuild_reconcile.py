"""tests/integration/test_rebuild_reconcile.py on a cluster of its own."""

from tests.integration.test_rebuild_reconcile import *  # noqa: F403
