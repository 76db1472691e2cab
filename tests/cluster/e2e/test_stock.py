"""tests/e2e/test_stock_api.py, test_idempotency.py, test_stock_states.py and test_supply.py on
the cluster."""

from tests.e2e.test_idempotency import *  # noqa: F403
from tests.e2e.test_stock_api import *  # noqa: F403
from tests.e2e.test_stock_states import *  # noqa: F403
from tests.e2e.test_supply import *  # noqa: F403
