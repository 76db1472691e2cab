"""tests/e2e/test_sourcing_holds.py on the cluster: a hold's parts at locations whose partitions
live on different primaries, all or nothing, the courier, idempotent replays."""

from tests.e2e.test_sourcing_holds import *  # noqa: F403
