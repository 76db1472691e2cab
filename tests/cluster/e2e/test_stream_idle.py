"""The idle stream reader on the cluster: no reads without a subscription, and first
subscriptions racing writes lose nothing (one reader per partition stream, coalescing on)."""

from tests.e2e.stream.test_idle_reader import *  # noqa: F403
