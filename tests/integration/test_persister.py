"""The persister on real servers: exactly-once effect, crash windows, several at once."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from omnistock.redis import keys
from omnistock.redis.streams import GROUP, backlog
from omnistock.sync.persister import Persister
from tests.integration.conftest import Stack
from tests.integration.workload import (
    churn,
    ledger_ids,
    locations,
    pg_positions,
    redis_positions,
    stream_event_ids,
)


class Crash(Exception):
    """Stands for the process dying at a fault point."""


def crash_at(point: str):  # type: ignore[no-untyped-def]
    async def fault(where: str) -> None:
        if where == point:
            raise Crash(where)

    return fault


async def assert_exactly_persisted(stack: Stack, locs: list) -> None:  # type: ignore[type-arg]
    ids = await ledger_ids(stack.db, locs)
    assert len(ids) == len(set(ids))
    assert set(ids) == await stream_event_ids(stack.store, locs)
    assert await pg_positions(stack.db, locs) == await redis_positions(stack.store, locs)


async def persist_under_churn(
    stack: Stack,
    locs: list,  # type: ignore[type-arg]
    persisters: Sequence[Persister],
    rounds: int = 600,
) -> None:
    """Run ``persisters`` while ``rounds`` of churn are written and until the backlog is empty
    (at most 20 s), stop them, drain what is left, and check everything was persisted once."""
    tasks = [asyncio.create_task(p.run(block_ms=50)) for p in persisters]
    try:
        await churn(stack.store, locs, rounds)
        for _ in range(400):
            if await backlog(stack.redis, stack.partitions) == 0:
                break
            await asyncio.sleep(0.05)
    finally:
        for persister in persisters:
            persister.stop()
        await asyncio.gather(*tasks)
    await Persister(stack.redis, stack.db, stack.partitions, claim_idle_ms=0).drain()
    await assert_exactly_persisted(stack, locs)


async def test_everything_reaches_postgres_once(stack: Stack, uid: str) -> None:
    locs = await locations(stack.store, uid)
    assert await churn(stack.store, locs, 300) > 200
    persister = Persister(stack.redis, stack.db, stack.partitions, batch=64)
    assert await persister.drain() > 0
    await assert_exactly_persisted(stack, locs)
    assert await backlog(stack.redis, stack.partitions) == 0
    rows = await stack.db.fetch(
        "SELECT status, count(*) AS n FROM reservations WHERE location = ANY($1) GROUP BY status",
        [x.id for x in locs],
    )
    statuses = {r["status"]: r["n"] for r in rows}
    assert set(statuses) <= {"committed", "released"} and sum(statuses.values()) > 0
    offsets = {
        r["partition"]: (r["last_ms"], r["last_seq"])
        for r in await stack.db.fetch("SELECT * FROM stream_offsets")
    }
    for p in {stack.store.partition(x.id) for x in locs}:
        info = await stack.redis.xinfo_stream(keys.stream(p))
        assert "-".join(map(str, offsets[p])) == info["last-generated-id"].decode()


@pytest.mark.parametrize("point", ["before_commit", "after_commit"])
async def test_crash_windows_lose_and_double_nothing(stack: Stack, uid: str, point: str) -> None:
    locs = await locations(stack.store, f"{uid}{point[:3]}")
    await churn(stack.store, locs, 200)
    doomed = Persister(stack.redis, stack.db, stack.partitions, batch=64, fault=crash_at(point))
    with pytest.raises(Crash):
        await doomed.step(None)
    # The dead consumer's entries are pending; a restarted persister (a new consumer) claims them.
    pending = [
        (await stack.redis.xpending(keys.stream(p), GROUP))["pending"]
        for p in range(stack.partitions)
    ]
    assert sum(pending) > 0
    restarted = Persister(stack.redis, stack.db, stack.partitions, batch=64, claim_idle_ms=0)
    await restarted.drain()
    await assert_exactly_persisted(stack, locs)
    assert await backlog(stack.redis, stack.partitions) == 0


async def test_killed_mid_batch(stack: Stack, uid: str) -> None:
    """Cancelled while its transaction is open (the task dies mid-write): rolled back, redone."""
    locs = await locations(stack.store, uid)
    await churn(stack.store, locs, 200)
    inside = asyncio.Event()

    async def stall(where: str) -> None:
        if where == "before_commit":
            inside.set()
            await asyncio.sleep(3600)

    doomed = Persister(stack.redis, stack.db, stack.partitions, batch=64, fault=stall)
    task = asyncio.create_task(doomed.step(None))
    await inside.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await ledger_ids(stack.db, locs) == []
    await Persister(stack.redis, stack.db, stack.partitions, claim_idle_ms=0).drain()
    await assert_exactly_persisted(stack, locs)


async def test_several_persisters_under_write_load(stack: Stack, uid: str) -> None:
    locs = await locations(stack.store, uid, n=8)
    persisters = [
        Persister(stack.redis, stack.db, stack.partitions, batch=32, claim_idle_ms=200)
        for _ in range(3)
    ]
    await persist_under_churn(stack, locs, persisters)
    assert sum(p.persisted for p in persisters) > 0
