"""Sourcing hold records in Postgres, on real servers: the persister writes the streams' ``o``
entries (the newest event wins, whatever order they are written in, by however many persisters),
quarantines malformed ones, GET's fallback reads them, a rebuild hands the unfinished ones back to
the courier (record + pending set, lease ending now) and no finished one, and pruning deletes only
finished records past retention, each once, in bounded batches.

The entries are appended here in exactly the shape the sourcing scripts write (field ``o`` = the
record JSON, ``k`` = the kind), with records built by domain/sourcing_holds.py."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import msgspec

from omnistock.domain.ids import new_reservation_id, new_sourcing_id, sourcing_partition
from omnistock.domain.sourcing_holds import (
    HoldPart,
    HoldRequest,
    HoldStatus,
    SourcingHold,
    decode_hold,
    encode_hold,
)
from omnistock.postgres import ledger
from omnistock.postgres.prune import DAY, Retention, prune_once
from omnistock.redis import keys
from omnistock.redis.streams import GROUP, backlog
from omnistock.sync.persister import Persister
from omnistock.sync.rebuild import ensure_ready, rebuild_locked
from tests.integration.conftest import PARTITIONS, Stack

_KIND: dict[str, str] = {
    "pending": "begin",
    "compensating": "abort",
    "held": "finish",
    "failed": "fail",
    "released": "release",
}


def _hold(
    hold_id: str,
    status: HoldStatus,
    *,
    attempt: int = 1,
    updated_at: int | None = None,
    lease_until: int | None = None,
) -> SourcingHold:
    now = int(time.time() * 1000)
    p = sourcing_partition(hold_id, PARTITIONS)
    parts = [
        HoldPart(
            reservation=new_reservation_id((p + i) % PARTITIONS),
            location=f"{hold_id}-l{i}",
            lines=[("a", 2), ("b", 1)],
            distance_km=1.5 * i,
        )
        for i in range(2)
    ]
    return SourcingHold(
        id=hold_id,
        status=status,
        attempt=attempt,
        request=HoldRequest(
            lines=[("a", 4), ("b", 2)], fulfillment="ship", ttl_ms=900_000, channel="web"
        ),
        parts=parts,
        why="2 locations: none has every line alone",
        actor="shop",
        created_at=now - 1000,
        updated_at=now if updated_at is None else updated_at,
        lease_until=(now + 5000) if lease_until is None else lease_until,
        owner="k1",
        owner_role="storefront",
        shortages=[("a", 4, 1)] if status == "failed" else None,
    )


async def _append(stack: Stack, hold: SourcingHold, kind: str | None = None) -> bytes:
    """XADD the record to its partition's stream as the scripts do; the entry id."""
    p = sourcing_partition(hold.id, PARTITIONS)
    fields = {"o": encode_hold(hold), "k": kind or _KIND[hold.status]}
    entry: bytes = await stack.redis.xadd(keys.stream(p), fields)
    return entry


async def _row(db: asyncpg.Pool, hold_id: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await db.fetchrow(
        "SELECT status, doc::text AS doc, event_ms, event_seq,"
        " (extract(epoch FROM created_at) * 1000)::bigint AS created,"
        " (extract(epoch FROM updated_at) * 1000)::bigint AS updated"
        " FROM sourcing_holds WHERE id = $1",
        hold_id,
    )
    return row


def _entry_id(row: asyncpg.Record) -> str:
    return f"{row['event_ms']}-{row['event_seq']}"


async def test_persister_writes_each_record_and_the_newest_event_wins(stack: Stack) -> None:
    p = 3
    hold_id = new_sourcing_id(p)
    begin = _hold(hold_id, "pending")
    replan = _hold(hold_id, "pending", attempt=2, updated_at=begin.updated_at + 5)
    held = _hold(hold_id, "held", attempt=2, updated_at=begin.updated_at + 9)
    ids = [await _append(stack, begin), await _append(stack, replan, "replan")]
    ids.append(await _append(stack, held))
    persister = Persister(stack.redis, stack.db, stack.partitions, batch=64)
    await persister.drain()
    row = await _row(stack.db, hold_id)
    assert row is not None
    assert row["status"] == "held"
    assert decode_hold(row["doc"]) == held
    assert _entry_id(row) == ids[-1].decode()
    assert (row["created"], row["updated"]) == (held.created_at, held.updated_at)
    # The GET fallback reads the same record; an id never written reads as None.
    found = await ledger.sourcing_hold_doc(stack.db, hold_id)
    assert found is not None and decode_hold(found) == held
    assert await ledger.sourcing_hold_doc(stack.db, new_sourcing_id(p)) is None

    # Older events written again (a claimed batch replayed, in any order, alone or together)
    # never take the record back.
    entries = [
        (p, entry_id, fields)
        for entry_id, fields in await stack.redis.xrange(keys.stream(p), ids[0], ids[-1])
        if b"o" in fields and decode_hold(fields[b"o"]).id == hold_id
    ]
    assert len(entries) == 3
    for replayed in ([entries[0]], [entries[1]], [entries[2], entries[0], entries[1]]):
        await persister.persist(replayed)
        after = await _row(stack.db, hold_id)
        assert after is not None and dict(after) == dict(row)
    # A record Postgres does not have yet, its events in one batch newest first: the newest.
    fresh = new_sourcing_id(p)
    first = await _append(stack, _hold(fresh, "pending"))
    second = await _append(stack, _hold(fresh, "failed"))
    reversed_batch = [
        (p, entry_id, fields)
        for entry_id, fields in reversed(await stack.redis.xrange(keys.stream(p), first, second))
        if b"o" in fields and decode_hold(fields[b"o"]).id == fresh
    ]
    await persister.persist(reversed_batch)
    row = await _row(stack.db, fresh)
    assert row is not None and (row["status"], _entry_id(row)) == ("failed", second.decode())


async def test_released_after_held_moves_the_record_on(stack: Stack) -> None:
    hold_id = new_sourcing_id(5)
    held = _hold(hold_id, "held")
    await _append(stack, held)
    persister = Persister(stack.redis, stack.db, stack.partitions)
    await persister.drain()
    released = _hold(hold_id, "released", updated_at=held.updated_at + 1000)
    last = await _append(stack, released)
    await persister.drain()
    row = await _row(stack.db, hold_id)
    assert row is not None
    assert (row["status"], _entry_id(row)) == ("released", last.decode())
    assert decode_hold(row["doc"]) == released


async def test_many_persisters_at_once_keep_the_newest_event_of_every_record(
    stack: Stack,
) -> None:
    """Four persisters drain the same streams at once in small batches (so each takes some of
    every record's events and commits them in any order): every record ends as its last event."""
    rng_statuses: list[HoldStatus] = ["pending", "compensating", "pending", "held", "released"]
    last: dict[str, tuple[SourcingHold, bytes]] = {}
    holds = [new_sourcing_id(i % PARTITIONS) for i in range(80)]
    base = int(time.time() * 1000)
    for step in range(len(rng_statuses)):
        for n, hold_id in enumerate(holds):
            if step > n % len(rng_statuses):
                continue  # records stop at different steps
            doc = _hold(hold_id, rng_statuses[step], attempt=1 + step // 2, updated_at=base + step)
            last[hold_id] = (doc, await _append(stack, doc))
    persisters = [Persister(stack.redis, stack.db, stack.partitions, batch=8) for _ in range(4)]
    await asyncio.gather(*(p.drain() for p in persisters))
    await persisters[0].drain()
    assert await backlog(stack.redis, PARTITIONS) == 0
    rows = await stack.db.fetch(
        "SELECT id, status, doc::text AS doc, event_ms, event_seq FROM sourcing_holds"
        " WHERE id = ANY($1)",
        holds,
    )
    got = {r["id"]: (r["status"], decode_hold(r["doc"]), _entry_id(r)) for r in rows}
    assert got == {
        hold_id: (doc.status, doc, entry.decode()) for hold_id, (doc, entry) in last.items()
    }
    assert sum(p.quarantined for p in persisters) == 0


async def test_malformed_records_are_quarantined_and_the_rest_persisted(stack: Stack) -> None:
    p = 7
    good_before, good_after = (
        _hold(new_sourcing_id(p), "pending"),
        _hold(new_sourcing_id(p), "held"),
    )
    stream = keys.stream(p)
    await _append(stack, good_before)
    wrong_partition = _hold(new_sourcing_id(p + 1), "pending")
    past_any_date = msgspec.structs.replace(_hold(new_sourcing_id(p), "held"), created_at=2**62)
    poison = [
        await stack.redis.xadd(stream, {"o": b"{not json", "k": b"begin"}),
        await stack.redis.xadd(stream, {"o": b'{"id": "s7-x", "status": "lost"}', "k": b"begin"}),
        # a record in a partition its id does not name: rebuild could never find it
        await stack.redis.xadd(stream, {"o": encode_hold(wrong_partition), "k": b"begin"}),
        # a time Postgres cannot store
        await stack.redis.xadd(stream, {"o": encode_hold(past_any_date), "k": b"finish"}),
    ]
    await _append(stack, good_after)
    persister = Persister(stack.redis, stack.db, stack.partitions, batch=64)
    await persister.drain()
    assert persister.quarantined == 4
    rows = await stack.db.fetch(
        "SELECT event_id, error FROM quarantined_events WHERE event_id = ANY($1)",
        [f"{p}:{entry.decode()}" for entry in poison],
    )
    errors = {r["event_id"]: r["error"] for r in rows}
    assert len(errors) == 4
    assert "does not name partition 7" in errors[f"{p}:{poison[2].decode()}"]
    for hold in (good_before, good_after):
        row = await _row(stack.db, hold.id)
        assert row is not None and decode_hold(row["doc"]) == hold
    for hold in (wrong_partition, past_any_date):
        assert await _row(stack.db, hold.id) is None
    assert (await stack.redis.xpending(stream, GROUP))["pending"] == 0


async def _insert(db: asyncpg.Pool, hold: SourcingHold, age_s: float) -> None:
    """A record row whose last change is ``age_s`` seconds old."""
    await db.execute(
        "INSERT INTO sourcing_holds (id, status, created_at, updated_at, doc, event_ms,"
        " event_seq) VALUES ($1, $2, now() - $3 * interval '1 second',"
        " now() - $3 * interval '1 second', $4::jsonb, 1, 0)",
        hold.id,
        hold.status,
        age_s,
        encode_hold(hold).decode(),
    )


async def test_pruning_deletes_only_finished_records_past_retention(stack: Stack) -> None:
    db = stack.db
    cases: list[tuple[HoldStatus, float, bool]] = [  # status, age in days, pruned
        ("released", 11, True),
        ("failed", 12, True),
        ("released", 9, False),
        ("failed", 1, False),
        # held: its parts may stay active up to 7 days after it was held
        ("held", 11, False),
        ("held", 16.5, False),
        ("held", 17.5, True),
        ("held", 40, True),
        # never an unfinished one, however old
        ("pending", 400, False),
        ("compensating", 400, False),
    ]
    ids = []
    for status, age, _ in cases:
        hold = _hold(new_sourcing_id(len(ids) % PARTITIONS), status)
        await _insert(db, hold, age * DAY)
        ids.append(hold.id)
    retention = Retention(ledger_seconds=0, reservations_seconds=10 * DAY, batch=2)
    done = await prune_once(db, retention)
    assert done == {"reservations": 0, "sourcing_holds": 4, "idempotency": 0}
    left = {
        r["id"] for r in await db.fetch("SELECT id FROM sourcing_holds WHERE id = ANY($1)", ids)
    }
    assert left == {
        hold_id for hold_id, (_, _, pruned) in zip(ids, cases, strict=True) if not pruned
    }
    assert (await prune_once(db, retention))["sourcing_holds"] == 0
    # Zero retention keeps them for ever.
    forever = await prune_once(db, Retention(ledger_seconds=0, reservations_seconds=0, batch=2))
    assert "sourcing_holds" not in forever
    assert await db.fetchval("SELECT count(*) FROM sourcing_holds WHERE id = ANY($1)", ids) == 6
    await db.execute("DELETE FROM sourcing_holds WHERE id = ANY($1)", ids)  # leave no old rows


async def test_concurrent_pruners_while_records_change_delete_each_old_record_once(
    stack: Stack,
) -> None:
    """Four pruners at once (batches of 25) over 600 old finished records, while the persister
    writes new events of 100 old unfinished ones (they become held now): each old finished record
    is deleted exactly once, and nothing unfinished or just changed."""
    db = stack.db
    old = [_hold(new_sourcing_id(i % PARTITIONS), "released") for i in range(600)]
    young = [_hold(new_sourcing_id(i % PARTITIONS), "failed") for i in range(50)]
    moving = [_hold(new_sourcing_id(i % PARTITIONS), "pending") for i in range(100)]
    for hold in old:
        await _insert(db, hold, 11 * DAY)
    for hold in young:
        await _insert(db, hold, 9 * DAY)
    for hold in moving:
        await _insert(db, hold, 30 * DAY)
    retention = Retention(ledger_seconds=0, reservations_seconds=10 * DAY, batch=25)
    persister = Persister(stack.redis, stack.db, stack.partitions, batch=16)

    async def finish_the_moving_ones() -> None:
        for n, hold in enumerate(moving):
            await _append(stack, msgspec.structs.replace(hold, status="held"))
            if n % 10 == 9:
                await persister.drain()
        await persister.drain()

    past = await db.fetchval(
        "SELECT count(*) FROM sourcing_holds WHERE status IN ('held', 'failed', 'released')"
        " AND updated_at < now() - interval '10 days'"
    )
    assert past >= 600  # these, and any an earlier test of the module left
    results = await asyncio.gather(
        *(prune_once(db, retention) for _ in range(4)), finish_the_moving_ones()
    )
    assert sum(r["sourcing_holds"] for r in results if r is not None) == past
    every = [h.id for h in old + young + moving]
    rows = await db.fetch("SELECT id, status FROM sourcing_holds WHERE id = ANY($1)", every)
    assert {r["id"]: r["status"] for r in rows} == {
        **{h.id: "failed" for h in young},
        **{h.id: "held" for h in moving},
    }
    await db.execute("DELETE FROM sourcing_holds WHERE id = ANY($1)", every)


async def _redis_record(stack: Stack, hold_id: str) -> tuple[dict[bytes, bytes], float | None]:
    p = sourcing_partition(hold_id, PARTITIONS)
    record = await stack.redis.hgetall(keys.sourcing_hold(p, hold_id))
    score = await stack.redis.zscore(keys.sourcing_pending(p), hold_id)
    return record, score


async def _redis_now(stack: Stack) -> int:
    seconds, micros = await stack.redis.time()
    return int(seconds) * 1000 + int(micros) // 1000


async def test_rebuild_gives_unfinished_records_to_the_courier_and_no_finished_one(
    stack: Stack,
) -> None:
    """Redis is lost: the pending and compensating records come back (record + pending set, the
    lease ending at the rebuild, so the courier takes them at once); held, failed and released
    ones do not (GET reads them from Postgres). A rebuild over a live (older) Redis drops pending
    entries whose record Postgres has as finished, and serves Postgres' record, not the stale one."""
    far = int(time.time() * 1000) + 3_600_000  # a lease a live driver still holds
    by_status: dict[str, SourcingHold] = {}
    statuses: list[HoldStatus] = ["pending", "compensating", "held", "failed", "released"]
    for n, status in enumerate(statuses):
        hold = _hold(new_sourcing_id(n * 3), status, lease_until=far)
        by_status[status] = hold
        await _append(stack, hold)
    # A second attempt of a record: the rebuild restores its newest state.
    replanned = msgspec.structs.replace(by_status["pending"], attempt=2, why="re-planned")
    await _append(stack, replanned, "replan")
    by_status["pending"] = replanned
    await Persister(stack.redis, stack.db, stack.partitions).drain()

    await stack.redis.flushall()
    before = await _redis_now(stack)
    assert await ensure_ready(stack.redis, stack.db, stack.scripts, PARTITIONS) == "rebuilt"
    after = await _redis_now(stack)
    for status in ("pending", "compensating"):
        hold = by_status[status]
        record, score = await _redis_record(stack, hold.id)
        assert record[b"st"] == status.encode()
        restored = decode_hold(record[b"doc"])
        assert before <= restored.lease_until <= after
        assert restored == msgspec.structs.replace(hold, lease_until=restored.lease_until)
        assert score == restored.lease_until
    for status in ("held", "failed", "released"):
        assert await _redis_record(stack, by_status[status].id) == ({}, None)
        # ...and they still read from Postgres
        doc = await ledger.sourcing_hold_doc(stack.db, by_status[status].id)
        assert doc is not None and decode_hold(doc) == by_status[status]

    # The compensating one is undone by the courier (as its script would record it); a stale
    # pending entry is left in Redis. `omnistock rebuild` on this live Redis keeps only what
    # Postgres says is unfinished.
    undone = msgspec.structs.replace(by_status["compensating"], status="failed")
    await _append(stack, undone, "fail")
    p = sourcing_partition(undone.id, PARTITIONS)
    await stack.redis.zadd(keys.sourcing_pending(p), {undone.id: far})
    # ...and a record Postgres pruned long ago, still pending in this (older) Redis
    gone = _hold(new_sourcing_id(p), "pending")
    gone_key = keys.sourcing_hold(p, gone.id)
    await stack.redis.hset(gone_key, mapping={"doc": encode_hold(gone), "st": "pending"})
    await stack.redis.zadd(keys.sourcing_pending(p), {gone.id: far})
    restored = await rebuild_locked(stack.redis, stack.db, stack.scripts, PARTITIONS)
    assert restored.sourcing_holds >= 1
    record, score = await _redis_record(stack, undone.id)
    assert score is None  # the courier has nothing to do with it
    assert record[b"st"] == b"failed" and decode_hold(record[b"doc"]) == undone  # not stale
    assert await _redis_record(stack, gone.id) == ({}, None)
    record, score = await _redis_record(stack, by_status["pending"].id)
    assert score is not None and decode_hold(record[b"doc"]).attempt == 2
    pending_ids = await _all_pending(stack)
    unfinished = {r["id"] for r in await ledger.unfinished_sourcing_holds(stack.db)}
    assert pending_ids == unfinished


async def _all_pending(stack: Stack) -> set[str]:
    found: set[str] = set()
    for p in range(PARTITIONS):
        members: list[Any] = await stack.redis.zrange(keys.sourcing_pending(p), 0, -1)
        found |= {m.decode() for m in members}
    return found
