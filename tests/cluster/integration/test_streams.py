"""tests/integration/test_streams.py on a cluster of its own. Its trim test reads every stream
in one XREADGROUP, which a cluster refuses (keys of many slots): here the read is one per
stream (redis/stream_reads.py), the assertions the same."""

from omnistock.redis import keys
from omnistock.redis.stream_reads import read_streams
from omnistock.redis.streams import GROUP, backlog, trim
from omnistock.sync.persister import Persister
from tests.integration.conftest import Stack
from tests.integration.test_streams import *  # noqa: F403
from tests.integration.test_streams import lengths
from tests.integration.workload import churn, locations


async def test_trim_never_drops_what_is_not_persisted(stack: Stack, uid: str) -> None:
    await Persister(stack.redis, stack.db, stack.partitions, claim_idle_ms=0).drain()
    await trim(stack.redis, stack.scripts, stack.partitions, retention_ms=0)
    locs = await locations(stack.store, uid)
    await churn(stack.store, locs, 120)
    written = await lengths(stack)
    assert written > 0
    assert await trim(stack.redis, stack.scripts, stack.partitions, retention_ms=0) == 0
    assert await lengths(stack) == written

    # Delivered to a persister that died before acking: still not trimmable.
    delivered = await read_streams(
        stack.redis,
        {keys.stream(p): ">" for p in range(stack.partitions)},
        count=5,
        block_ms=None,
        group=GROUP,
        consumer="dead",
    )
    assert delivered
    assert await trim(stack.redis, stack.scripts, stack.partitions, retention_ms=0) == 0
    assert await backlog(stack.redis, stack.partitions) == written

    await Persister(stack.redis, stack.db, stack.partitions, claim_idle_ms=0).drain()
    assert await trim(stack.redis, stack.scripts, stack.partitions, retention_ms=3_600_000) == 0
    assert await trim(stack.redis, stack.scripts, stack.partitions, retention_ms=0) == written
    assert await lengths(stack) == 0
    p = stack.store.partition(locs[0].id)
    info = await stack.redis.xinfo_stream(keys.stream(p))
    assert info["max-deleted-entry-id"] == info["last-generated-id"]
