"""Stream hygiene: entries go only once persisted, and not before the retention window ends."""

from __future__ import annotations

from omnistock.redis import keys
from omnistock.redis.streams import GROUP, backlog, trim
from omnistock.sync.persister import Persister
from tests.integration.conftest import Stack
from tests.integration.workload import churn, locations


async def lengths(stack: Stack) -> int:
    return sum([await stack.redis.xlen(keys.stream(p)) for p in range(stack.partitions)])


async def test_trim_never_drops_what_is_not_persisted(stack: Stack, uid: str) -> None:
    await Persister(stack.redis, stack.db, stack.partitions, claim_idle_ms=0).drain()
    await trim(stack.redis, stack.scripts, stack.partitions, retention_ms=0)
    locs = await locations(stack.store, uid)
    await churn(stack.store, locs, 120)
    written = await lengths(stack)
    assert written > 0
    assert (
        await trim(stack.redis, stack.scripts, stack.partitions, retention_ms=0) == 0
    )  # nothing persisted yet
    assert await lengths(stack) == written

    # Delivered to a persister that died before acking: still not trimmable.
    await stack.redis.xreadgroup(
        GROUP, "dead", {keys.stream(p): ">" for p in range(stack.partitions)}, count=5
    )
    assert await trim(stack.redis, stack.scripts, stack.partitions, retention_ms=0) == 0
    assert await backlog(stack.redis, stack.partitions) == written

    await Persister(stack.redis, stack.db, stack.partitions, claim_idle_ms=0).drain()
    assert (
        await trim(stack.redis, stack.scripts, stack.partitions, retention_ms=3_600_000) == 0
    )  # kept for resume
    assert await trim(stack.redis, stack.scripts, stack.partitions, retention_ms=0) == written
    assert await lengths(stack) == 0
    # A trimmed stream remembers what it dropped: resuming below it is known to miss entries.
    p = stack.store.partition(locs[0].id)
    info = await stack.redis.xinfo_stream(keys.stream(p))
    assert info["max-deleted-entry-id"] == info["last-generated-id"]
