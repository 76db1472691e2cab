"""The persister meets entries it cannot write (a foreign or corrupted stream entry): each is
found by halving its batch, quarantined with the error and acknowledged; everything else, before
and after it in the same batches, is persisted exactly as without it."""

from __future__ import annotations

import msgspec

from omnistock.domain.events import PositionEvent
from omnistock.redis import keys
from omnistock.redis.streams import GROUP, backlog
from omnistock.sync.persister import Persister
from tests.integration.conftest import Stack
from tests.integration.workload import churn, locations, pg_positions, redis_positions


def _position(location: str, version: int) -> bytes:
    event = PositionEvent(
        location, "s", "adjust", "receipt", "", "test", "", "", 1, 0, 1, 0, 0, -1, version, 1,
        "in_stock", "out_of_stock", 1,
    )  # fmt: skip
    return msgspec.msgpack.encode(event)


async def test_poison_entries_are_quarantined_and_the_rest_persisted(
    stack: Stack, uid: str
) -> None:
    locs = await locations(stack.store, uid)
    await churn(stack.store, locs, 120, seed=3)
    p = stack.store.partition(locs[0].id)
    stream = keys.stream(p)
    poison = [
        await stack.redis.xadd(stream, {"p": b"\xc1"}),  # does not decode
        await stack.redis.xadd(stream, {"p": _position(f"{uid}-x", 2**63)}),  # past bigint
        await stack.redis.xadd(stream, {"r": b"[1, 2]"}),  # not a reservation
    ]
    await churn(stack.store, locs, 120, seed=4)
    persister = Persister(stack.redis, stack.db, stack.partitions, batch=64)
    assert await persister.drain() > 0
    assert persister.quarantined == 3
    assert await pg_positions(stack.db, locs) == await redis_positions(stack.store, locs)
    rows = await stack.db.fetch(
        "SELECT event_id, partition, fields, error FROM quarantined_events"
        " WHERE event_id = ANY($1) ORDER BY event_id",
        [f"{p}:{entry.decode()}" for entry in poison],
    )
    assert len(rows) == 3 and {r["partition"] for r in rows} == {p}
    kept = {r["event_id"]: msgspec.msgpack.decode(r["fields"]) for r in rows}
    assert kept[f"{p}:{poison[0].decode()}"] == {b"p": b"\xc1"}
    assert "DecodeError" in next(
        r["error"] for r in rows if r["event_id"].endswith(poison[0].decode())
    )
    assert (
        await stack.db.fetchval("SELECT count(*) FROM ledger WHERE location = $1", f"{uid}-x") == 0
    )
    assert await backlog(stack.redis, stack.partitions) == 0
    assert (await stack.redis.xpending(stream, GROUP))["pending"] == 0
    # The partition's offset moved past them: a rebuild does not take Redis for "behind".
    last = await stack.db.fetchrow(
        "SELECT last_ms, last_seq FROM stream_offsets WHERE partition = $1", p
    )
    info = await stack.redis.xinfo_stream(stream)
    assert f"{last['last_ms']}-{last['last_seq']}" == info["last-generated-id"].decode()
