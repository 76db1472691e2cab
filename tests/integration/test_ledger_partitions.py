"""The ledger partitioned by month (migration 0008) on a real Postgres: the migration keeps every
row of an existing ledger, replays are still ignored, the pruning loop creates the months ahead
and moves stragglers out of the default partition, a month past retention is dropped whole while
newer rows stay, history says how far back it reaches, and the persister writing while pruners
create and drop partitions loses nothing and does not deadlock."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import secrets
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from omnistock.domain.clock import rfc3339
from omnistock.metrics import Metrics
from omnistock.postgres import ledger, partitions
from omnistock.postgres.migrate import migrate, migration_files
from omnistock.postgres.partitions import add_months, month_start
from omnistock.postgres.prune import DAY, Retention, prune_once, run_pruner
from omnistock.redis import keys
from omnistock.settings import load_settings
from omnistock.sync.persister import Batch, Persister
from tests.integration.conftest import Stack
from tests.integration.test_supervision import running, stock_up
from tests.integration.workload import churn, ledger_ids, locations, stream_event_ids

UTC = dt.UTC
_COLUMNS = (
    "event_id, partition, ts, location, sku, kind, reason, ref, actor, idempotency_key,"
    " delta_on_hand, delta_reserved, on_hand, reserved, safety_stock, version, reservation_id,"
    " delta_unsellable, unsellable, delta_incoming, incoming"
)


@contextlib.asynccontextmanager
async def fresh_database(stack: Stack) -> AsyncIterator[tuple[asyncpg.Pool, str]]:
    """An empty database of its own on the stack's Postgres (its partitions are its own)."""
    name = "pp" + secrets.token_hex(4)
    await stack.db.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(stack.servers.database_url)
    url = urlunsplit(parts._replace(path=f"/{name}"))
    pool = await asyncpg.create_pool(url, min_size=1, max_size=8)
    assert pool is not None
    try:
        yield pool, url
    finally:
        await pool.close()
        await stack.db.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


async def _migrate_before_0008(pool: asyncpg.Pool) -> None:
    """The schema as it was before the ledger was partitioned (recorded as applied)."""
    async with pool.acquire() as conn:
        await conn.execute(
            "CREATE TABLE schema_migrations ("
            " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for name, sql in migration_files():
            if name >= "0008":
                break
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", name)


async def _rows(db: Any, location: str, ts: list[dt.datetime], first_version: int = 1) -> None:
    """One ledger row per instant, versions counting up from ``first_version``."""
    await db.executemany(
        f"INSERT INTO ledger ({_COLUMNS}) VALUES ($1, 0, $2, $3, 's', 'adjust', 'receipt', NULL,"
        " 'test', NULL, 1, 0, $4, 0, 0, $4, NULL, 0, 0, 0, 0)",
        [(f"0:{location}-{v}", t, location, v) for v, t in enumerate(ts, first_version)],
    )


async def _ledger_of(db: Any, location: str) -> list[tuple[Any, ...]]:
    rows = await db.fetch(
        f"SELECT {_COLUMNS}, tableoid::regclass::text AS part FROM ledger WHERE location = $1"
        " ORDER BY version",
        location,
    )
    return [tuple(r) for r in rows]


def _part_of(ts: dt.datetime) -> str:
    return "ledger_p" + ts.astimezone(UTC).strftime("%Y%m")


async def test_history_says_how_far_back_it_reaches(stack: Stack, uid: str) -> None:
    """retained_since is null until retention deletes something, then the cutoff it used: the
    history before it is gone, after it complete."""
    async with running(stack, worker=False) as (_, client):
        await stock_up(client, uid, s=5)  # version 1, now
        await Persister(stack.redis, stack.db, stack.partitions).drain()
        recorded = await partitions.retained_since(stack.db)
        before = (await client.get(f"/v1/stock/{uid}/s/history")).json()
        assert before["retained_since"] == (rfc3339(recorded) if recorded is not None else None)
        if recorded is None:  # a fresh database: nothing was ever pruned
            assert "retained_since" in before and before["retained_since"] is None
        await _rows(stack.db, uid, [dt.datetime.now(UTC) - dt.timedelta(days=11)], 100)
        done = await prune_once(
            stack.db, Retention(ledger_seconds=10 * DAY, reservations_seconds=0, batch=500)
        )
        assert done["ledger"] >= 1
        since = await partitions.retained_since(stack.db)
        assert since is not None
        expected = dt.datetime.now(UTC) - dt.timedelta(days=10)
        assert abs(since / 1000 - expected.timestamp()) < 60
        page = (await client.get(f"/v1/stock/{uid}/s/history")).json()
        assert page["retained_since"] == rfc3339(since)
        assert [item["version"] for item in page["items"]] == [1]  # the 11-day-old row is gone


async def test_migration_keeps_every_row_of_an_existing_ledger(stack: Stack) -> None:
    async with fresh_database(stack) as (db, _):
        await _migrate_before_0008(db)
        now = dt.datetime.now(UTC)
        # Rows over the last 15 months, this month, and one far ahead (a clock that ran fast).
        spread = [now - dt.timedelta(days=d, minutes=d) for d in range(0, 460, 7)]
        spread.append(now + dt.timedelta(days=200))
        # Both sides of a month boundary (UTC): the first instant belongs to the new month.
        boundary = add_months(month_start(now), -1)
        spread += [boundary - dt.timedelta(milliseconds=1), boundary]
        await _rows(db, "a", spread)
        await _rows(db, "b", [now - dt.timedelta(days=40)] * 3)  # same ts, versions differ
        old = sorted(
            tuple(r)
            for r in await db.fetch(f"SELECT {_COLUMNS} FROM ledger ORDER BY location, version")
        )
        assert len(old) == len(spread) + 3

        async with db.acquire() as conn:
            assert await migrate(conn) == ["0008_ledger_partitions"]

        assert (
            await db.fetchval("SELECT relkind::text FROM pg_class WHERE relname = 'ledger'") == "p"
        )
        new = sorted(tuple(r) for r in await db.fetch(f"SELECT {_COLUMNS} FROM ledger"))
        assert new == old
        # Every row in its own month's partition; none left to the default one.
        placed = await db.fetch("SELECT ts, tableoid::regclass::text AS part FROM ledger")
        assert all(r["part"] == _part_of(r["ts"]) for r in placed)
        assert await db.fetchval("SELECT count(*) FROM ledger_default") == 0
        current = month_start(now)
        expected = {month_start(t) for t in spread} | {add_months(current, n) for n in range(3)}
        assert set(await partitions.months(db)) == expected
        assert await partitions.retained_since(db) is None  # nothing was deleted


async def test_persister_still_ignores_replays(stack: Stack, uid: str) -> None:
    """Every stream entry written a second (and third) time changes nothing: one ledger row per
    event, the same rows."""
    locs = await locations(stack.store, uid)
    persister = Persister(stack.redis, stack.db, stack.partitions, batch=64)
    await churn(stack.store, locs, 150, seed=3)
    await persister.drain()
    first = sorted(await ledger_ids(stack.db, locs))
    assert set(first) == await stream_event_ids(stack.store, locs) and len(first) > 100
    before = {loc.id: await _ledger_of(stack.db, loc.id) for loc in locs}
    entries = [
        (p, entry_id, fields)
        for p in {stack.store.partition(loc.id) for loc in locs}
        for entry_id, fields in await stack.redis.xrange(keys.stream(p))
    ]
    for _ in range(2):
        async with stack.db.acquire() as conn, conn.transaction():
            await Batch(entries).write(conn)
    assert sorted(await ledger_ids(stack.db, locs)) == first
    assert {loc.id: await _ledger_of(stack.db, loc.id) for loc in locs} == before


async def test_the_pruning_loop_creates_months_ahead_and_moves_stragglers(stack: Stack) -> None:
    async with fresh_database(stack) as (db, url):
        async with db.acquire() as conn:
            await migrate(conn)
        now = dt.datetime.now(UTC)
        current = month_start(now)
        assert set(await partitions.months(db)) == {add_months(current, n) for n in range(3)}
        # A row eight months ahead has no month yet: the default partition keeps it.
        ahead = add_months(current, 8) + dt.timedelta(days=3)
        await _rows(db, "far", [ahead])
        assert (await _ledger_of(db, "far"))[0][-1] == "ledger_default"

        settings = load_settings(
            {}, database_url=url, ledger_partitions_ahead=4, prune_interval_seconds=1.0
        )
        loop = asyncio.create_task(run_pruner(db, settings, Metrics()))
        try:
            wanted = {add_months(current, n) for n in range(5)} | {add_months(current, 8)}
            for _ in range(200):
                if set(await partitions.months(db)) == wanted:
                    break
                await asyncio.sleep(0.1)
            assert set(await partitions.months(db)) == wanted
        finally:
            loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop
        rows = await _ledger_of(db, "far")
        assert len(rows) == 1 and rows[0][-1] == _part_of(ahead)
        assert await db.fetchval("SELECT count(*) FROM ledger_default") == 0


async def test_a_month_past_retention_is_dropped_whole_and_newer_rows_stay(stack: Stack) -> None:
    async with fresh_database(stack) as (db, _):
        async with db.acquire() as conn:
            await migrate(conn)
        now = dt.datetime.now(UTC)
        current = month_start(now)
        for n in range(1, 5):
            assert await partitions.ensure_month(db, add_months(current, -n))
        # Two rows in each of the last four months (days 5 and 15), two this month.
        ts = [add_months(current, -n) + dt.timedelta(days=d) for n in (4, 3, 2, 1) for d in (4, 14)]
        ts += [now - dt.timedelta(minutes=1), now]
        await _rows(db, "x", ts)
        # The cutoff: day 11 of two months ago. Months -4 and -3 end before it: dropped whole.
        # Month -2 straddles it: kept, its day-5 row deleted as a row, its day-15 row kept.
        cutoff = add_months(current, -2) + dt.timedelta(days=10)
        retention = int((now - cutoff).total_seconds())
        done = await partitions.maintain(db, retention_seconds=retention, now=now)
        assert done.dropped == [add_months(current, -4), add_months(current, -3)]
        assert done.created == [] and done.lock_timeouts == 0
        assert (
            await partitions.retained_since(db) == int(add_months(current, -2).timestamp()) * 1000
        )
        assert [r[2] for r in await _ledger_of(db, "x")] == ts[4:]
        pruned = await prune_once(db, Retention(ledger_seconds=retention, reservations_seconds=0))
        assert pruned["ledger"] == 1
        assert [r[2] for r in await _ledger_of(db, "x")] == ts[5:]
        assert abs(await partitions.retained_since(db) / 1000 - cutoff.timestamp()) < 60
        assert set(await partitions.months(db)) == {add_months(current, n) for n in range(-2, 3)}
        # Again: nothing more to drop.
        again = await partitions.maintain(db, retention_seconds=retention, now=now)
        assert again.dropped == [] and again.created == []


async def test_persister_writing_while_pruners_create_and_drop_partitions_loses_nothing(
    stack: Stack, uid: str
) -> None:
    """Three pruners create and drop months over and over (past months with rows, dropped as
    past retention; future months created while a writer's rows for them arrive, first in the
    default partition, then directly) while the persister writes a churn: every event is in the
    ledger exactly once, every future row once and in its month's partition, and nothing
    deadlocks (a deadlock raises; a hang times out)."""
    db = stack.db
    now = dt.datetime.now(UTC)
    current = month_start(now)
    past = [add_months(current, -n) for n in range(9, 5, -1)]
    future = [add_months(current, n) for n in range(12, 20)]
    locs = await locations(stack.store, uid)
    persister = Persister(stack.redis, db, stack.partitions, batch=64)
    written: list[dt.datetime] = []
    retention = int((now - add_months(current, -5)).total_seconds())
    wait_ms = 20_000  # a lock wait this long would be a stall, not load
    timeouts = 0
    created: list[dt.datetime] = []

    async def write_and_persist() -> None:
        for seed in range(4):
            await churn(stack.store, locs, 120, seed=seed)
            await persister.drain()

    async def write_future() -> None:
        for i in range(160):
            t = future[i % len(future)] + dt.timedelta(days=1, seconds=i)
            await _rows(db, f"{uid}-far", [t], i + 1)
            written.append(t)
            await asyncio.sleep(0.003)

    async def prune(k: int) -> None:
        nonlocal timeouts
        for round_ in range(6):
            for month in past:
                await partitions.ensure_month(db, month, wait_ms)
                await _rows(db, f"{uid}-old{k}-{round_}", [month + dt.timedelta(days=2)])
            done = await partitions.maintain(
                db, retention_seconds=retention, lock_timeout_ms=wait_ms
            )
            timeouts += done.lock_timeouts
            created.extend(done.created)
            await partitions.ensure_month(db, future[round_], wait_ms)
            await asyncio.sleep(0.02)

    await asyncio.wait_for(
        asyncio.gather(write_and_persist(), write_future(), *(prune(k) for k in range(3))), 240
    )
    assert timeouts == 0
    await persister.drain()
    ids = await ledger_ids(db, locs)
    assert len(ids) == len(set(ids)) and set(ids) == await stream_event_ids(stack.store, locs)
    assert len(ids) > 300
    # The last two future months were never asked for: only rows waiting for them in the
    # default partition made maintain create them (moving those rows).
    assert set(future[6:]) <= set(created)
    await partitions.maintain(db, retention_seconds=retention)
    left = await _ledger_of(db, f"{uid}-far")
    assert [r[2] for r in left] == written
    assert [r[15] for r in left] == list(range(1, 161))
    assert all(r[-1] == _part_of(r[2]) for r in left)
    # A last round drops every past month a late ensure may have brought back.
    await partitions.maintain(db, retention_seconds=retention)
    assert not set(past) & set(await partitions.months(db))


async def test_a_before_event_is_found_however_far_its_ts_is_from_its_stream_id(
    stack: Stack, uid: str
) -> None:
    """History's `before` looks near the stream id's time first; an event written when the clock
    had stepped back (ts far from its id's ms) is still found, and an unknown id is not."""
    now = dt.datetime.now(UTC)
    await _rows(stack.db, uid, [now - dt.timedelta(minutes=5 - v) for v in range(5)])
    ids = [r[0] for r in await _ledger_of(stack.db, uid)]
    ms = int(now.timestamp() * 1000)
    # Version 2's id names a time an hour after its ts; version 4's names its own ts.
    await stack.db.execute(
        "UPDATE ledger SET event_id = $1 WHERE location = $2 AND version = 2",
        f"0:{ms + 3_600_000}-0",
        uid,
    )
    own = await stack.db.fetchval(
        "SELECT (extract(epoch FROM ts) * 1000)::bigint FROM ledger"
        " WHERE location = $1 AND version = 4",
        uid,
    )
    await stack.db.execute(
        "UPDATE ledger SET event_id = $1 WHERE location = $2 AND version = 4", f"0:{own}-7", uid
    )
    assert await ledger.event_version(stack.db, f"0:{ms + 3_600_000}-0", uid, "s") == 2
    assert await ledger.event_version(stack.db, f"0:{own}-7", uid, "s") == 4
    assert await ledger.event_version(stack.db, ids[0], uid, "s") == 1
    assert await ledger.event_version(stack.db, f"0:{own}-8", uid, "s") is None
    assert await ledger.event_version(stack.db, "0:99999999999999999999-0", uid, "s") is None
    rows = await ledger.history(stack.db, uid, "s", 4, 10)
    assert [r["version"] for r in rows] == [3, 2, 1]


async def test_row_pruning_deletes_the_old_row_not_another_months_row_at_the_same_ctid(
    stack: Stack,
) -> None:
    """A ctid names a row only within its partition: the first row of an old month and the first
    row of this month share ctid (0,1). Pruning takes the old one only (through the parent, a
    `ctid = ANY(...)` delete would take both)."""
    async with fresh_database(stack) as (db, _):
        async with db.acquire() as conn:
            await migrate(conn)
        now = dt.datetime.now(UTC)
        old_month = add_months(month_start(now), -3)
        assert await partitions.ensure_month(db, old_month)
        await _rows(db, "a", [old_month + dt.timedelta(days=1)])
        await _rows(db, "b", [now])
        ctids = await db.fetch("SELECT location, ctid::text AS ctid FROM ledger ORDER BY location")
        assert [r["ctid"] for r in ctids] == ["(0,1)", "(0,1)"]
        done = await prune_once(
            db, Retention(ledger_seconds=30 * DAY, reservations_seconds=0, batch=10)
        )
        assert done["ledger"] == 1
        assert [r[3] for r in await db.fetch(f"SELECT {_COLUMNS} FROM ledger")] == ["b"]


async def test_a_partition_change_gives_up_on_a_held_lock_and_succeeds_next_round(
    stack: Stack,
) -> None:
    """A long reader holds the ledger: dropping a month waits only the lock timeout, gives up
    (the month stays, the reader is not stalled behind it) and the next round drops it."""
    async with fresh_database(stack) as (db, _):
        async with db.acquire() as conn:
            await migrate(conn)
        now = dt.datetime.now(UTC)
        old = add_months(month_start(now), -6)
        assert await partitions.ensure_month(db, old)
        await _rows(db, "r", [old + dt.timedelta(days=1)])
        retention = 60 * DAY
        async with db.acquire() as reader, reader.transaction():
            assert await reader.fetchval("SELECT count(*) FROM ledger WHERE location = 'r'") == 1
            done = await partitions.maintain(db, retention_seconds=retention, lock_timeout_ms=100)
            assert done.dropped == [] and done.lock_timeouts == 1
            assert old in await partitions.months(db)
            # The reader's transaction is not blocked by a queued drop.
            assert await reader.fetchval("SELECT count(*) FROM ledger WHERE location = 'r'") == 1
        done = await partitions.maintain(db, retention_seconds=retention, lock_timeout_ms=100)
        assert done.dropped == [old] and done.lock_timeouts == 0
        assert await db.fetchval("SELECT count(*) FROM ledger WHERE location = 'r'") == 0
