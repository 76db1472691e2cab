"""redis/replicated.py's write connection on a primary with one replica: one WAIT covers a whole
batch (group commit), writes gathered behind a WAIT in flight fail (not hang) when the connection
drops, and WAITAOF where the primary has no AOF answers NotReplicated."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aredis
from loadtests.replica_pair import ReplicaPair
from redis.exceptions import ConnectionError as RedisConnectionError

from omnistock.domain.commands import Adjustment, Idempotency, idempotency_digest
from omnistock.domain.errors import NotReplicated
from omnistock.domain.ids import new_reservation_id
from omnistock.domain.locations import Location
from omnistock.redis import keys
from omnistock.redis.multiplex import Multiplexer
from omnistock.redis.replicated import WRITE_NAME, WaitMultiplexer
from omnistock.redis.store import StockStore
from tests.conftest import private_dir
from tests.stores import store_on

PARTITIONS = 16


@pytest.fixture(scope="module")
def pair() -> Iterator[ReplicaPair]:
    with private_dir("omnistock-waitconn-") as base, ReplicaPair(Path(base)).running() as servers:
        yield servers


@pytest.fixture
async def store(pair: ReplicaPair) -> AsyncIterator[StockStore]:
    hot = Multiplexer(pair.url)
    hot.writes = WaitMultiplexer(pair.url, replicas=1, timeout_ms=5000)
    async with store_on(aredis.Redis.from_url(pair.url), hot, PARTITIONS) as store:
        yield store


async def _reserve(store: StockStore, loc: str, idem: Idempotency | None = None) -> str:
    rid = new_reservation_id(store.partition(loc))
    found, _ = await store.reserve(
        reservation_id=rid, location=loc, lines=[("s", 1)], ttl_seconds=600, channel="web",
        ref="", allow_partial=False, actor="t", idem=idem,
    )  # fmt: skip
    return found.id


def _other_instance(store: StockStore, url: str) -> StockStore:
    """The same servers through a write connection of its own (another serving instance)."""
    hot = Multiplexer(url)
    hot.writes = WaitMultiplexer(url, replicas=1, timeout_ms=300)
    return StockStore(
        store.client, hot, store.scripts, partitions=PARTITIONS, idempotency_ttl_seconds=60,
        retention_seconds=60,
    )  # fmt: skip


async def test_one_wait_covers_a_batch_and_every_write_is_on_the_replica(
    pair: ReplicaPair, store: StockStore, uid: str
) -> None:
    assert isinstance(store.hot.writes, WaitMultiplexer)
    stats = store.hot.writes.stats
    await store.put_location_meta([Location(id=uid, name=uid, kind="store")])
    await store.adjust([Adjustment(uid, "s", 200, "receipt")], "t", None)
    batches, writes = stats.batches, stats.writes
    rids = await asyncio.gather(*(_reserve(store, uid) for _ in range(200)))
    assert stats.writes - writes == 200 and stats.unconfirmed == 0
    # Group commit: writes that arrive while a WAIT is out gather into the next batch.
    assert stats.batches - batches <= 200 // 4
    replica = aredis.Redis.from_url(pair.replica_url)
    try:
        p = store.partition(uid)
        async with replica.pipeline(transaction=False) as pipe:
            for rid in rids:
                pipe.exists(keys.reservation(p, rid))
            found = await pipe.execute()
    finally:
        await replica.aclose()
    assert found == [1] * 200


async def test_writes_gathered_behind_a_wait_fail_when_the_connection_drops(
    pair: ReplicaPair, store: StockStore, uid: str
) -> None:
    await store.put_location_meta([Location(id=uid, name=uid, kind="store")])
    await store.adjust([Adjustment(uid, "s", 10, "receipt")], "t", None)
    pair.pause_replica()  # the WAIT now blocks (timeout 5 s)
    admin = aredis.Redis.from_url(pair.url)
    try:
        first = asyncio.create_task(_reserve(store, uid))
        await asyncio.sleep(0.2)  # its WAIT is out; the next writes gather behind it
        gathered = [asyncio.create_task(_reserve(store, uid)) for _ in range(3)]
        await asyncio.sleep(0.2)
        ids = [c["id"] for c in await admin.client_list() if c["name"] == WRITE_NAME]
        assert len(ids) == 1
        await admin.execute_command("CLIENT", "KILL", "ID", ids[0])
        results = await asyncio.wait_for(
            asyncio.gather(first, *gathered, return_exceptions=True), 3.0
        )
    finally:
        pair.resume_replica()
        await admin.aclose()
    assert all(isinstance(r, RedisConnectionError) for r in results), results
    # The next write reconnects and is confirmed.
    await _reserve(store, uid)


async def test_a_replayed_retry_on_another_connection_waits_for_the_first_attempt(
    pair: ReplicaPair, store: StockStore, uid: str
) -> None:
    """The first attempt is applied but unconfirmed (replica stopped); a retry with the same key
    through another instance replays it and writes nothing, so a WAIT there would cover only that
    connection's own older writes: it must not answer success before the replica has it."""
    other = _other_instance(store, pair.url)
    await store.put_location_meta([Location(id=uid, name=uid, kind="store")])
    await store.adjust([Adjustment(uid, "s", 10, "receipt")], "t", None)
    await _reserve(other, uid)  # the other connection wrote once, while the replica was up
    idem = Idempotency(key=uid, digest=idempotency_digest("k", uid), body_hash="h")
    pair.pause_replica()
    try:
        with pytest.raises(NotReplicated):
            await _reserve(store, uid, idem)
        with pytest.raises(NotReplicated):
            await _reserve(other, uid, idem)  # replayed: still not on the replica
    finally:
        pair.resume_replica()
    rid = await _reserve(other, uid, idem)
    replica = aredis.Redis.from_url(pair.replica_url)
    try:
        assert await replica.exists(keys.reservation(store.partition(uid), rid)) == 1
    finally:
        await replica.aclose()
        await other.hot.aclose()
    (pos,) = await store.get_positions([(Location(id=uid, name=uid, kind="store"), "s")])
    assert pos.reserved == 2  # the other instance's first reservation and the keyed one, once


async def test_waitaof_without_aof_on_the_primary_answers_not_replicated(
    pair: ReplicaPair,
) -> None:
    admin = aredis.Redis.from_url(pair.url)
    writes = WaitMultiplexer(pair.url, replicas=1, timeout_ms=500, aof=True)
    await admin.config_set("appendonly", "no")
    try:
        with pytest.raises(NotReplicated, match="refused to confirm"):
            await writes.execute_command("FUNCTION", "LIST")  # held for the WAITAOF like a write
    finally:
        await admin.config_set("appendonly", "yes")
        await writes.aclose()
        # Turning AOF on rewrites it: let that finish (a shutdown during it waits).
        for _ in range(200):
            info = await admin.info("persistence")
            if not info["aof_rewrite_in_progress"] and not info["aof_rewrite_scheduled"]:
                break
            await asyncio.sleep(0.05)
        await admin.aclose()
