"""The stream on the cluster: delivery, and a subscriber resuming with ``since`` (on the same
instance and on another)."""

from tests.e2e.stream.test_delivery import *  # noqa: F403
from tests.e2e.stream.test_resume import *  # noqa: F403
