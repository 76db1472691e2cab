"""tests/e2e/test_reservations.py and test_no_oversell.py (no oversell under contention,
multi-line all or nothing) on the cluster."""

from tests.e2e.test_no_oversell import *  # noqa: F403
from tests.e2e.test_reservations import *  # noqa: F403
