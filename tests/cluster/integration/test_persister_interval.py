"""The persister's minimum interval between polling rounds on a cluster
(``persister_cluster_interval_ms``): several persisters under write load still persist every
entry exactly once, and a round that found entries is followed by the next no sooner than the
interval, so each round takes a batch per stream."""

from __future__ import annotations

import asyncio
from itertools import pairwise

from omnistock.sync.persister import Persister
from tests.integration.conftest import Stack
from tests.integration.test_persister import persist_under_churn
from tests.integration.workload import locations

INTERVAL_MS = 20


class Timed(Persister):
    """Records when each round started and what it found."""

    rounds: list[tuple[float, int]]

    async def step(self, block_ms: int | None = None) -> int:
        started = asyncio.get_running_loop().time()
        found = await super().step(block_ms)
        self.rounds.append((started, found))
        return found


async def test_interval_keeps_exactly_once_and_spaces_busy_rounds(stack: Stack, uid: str) -> None:
    locs = await locations(stack.store, uid, n=8)
    persisters = [
        Timed(
            stack.redis,
            stack.db,
            stack.partitions,
            batch=32,
            claim_idle_ms=200,
            cluster_interval_ms=INTERVAL_MS,
        )
        for _ in range(3)
    ]
    for persister in persisters:
        persister.rounds = []
        assert persister.cluster_interval == INTERVAL_MS / 1000
    await persist_under_churn(stack, locs, persisters)
    busy = 0
    for persister in persisters:
        for (start, found), (following, _) in pairwise(persister.rounds):
            if found:
                busy += 1
                # asyncio may wake a timer up to its clock resolution early
                assert following - start >= INTERVAL_MS / 1000 - 0.001, (start, following)
    assert busy > 0
