"""Reads over many partitions (sourcing plans, availability with ``?by=``, nearby stock) and the
import path on the cluster: batched reads split per primary, import batches per partition."""

from tests.e2e.test_availability_by import *  # noqa: F403
from tests.e2e.test_import_history import *  # noqa: F403
from tests.e2e.test_sourcing_plans import *  # noqa: F403
