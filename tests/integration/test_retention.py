"""Retention on real servers: finished reservations leave Redis after their retention (reads fall
back to Postgres), and the pruning job deletes from Postgres exactly the ledger rows, finished
reservations and idempotency records past retention, in bounded batches, and nothing else."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import asyncpg
import httpx

from omnistock.domain.ids import reservation_partition
from omnistock.postgres.prune import DAY, Retention, prune_once
from omnistock.redis import keys
from omnistock.redis.streams import backlog
from omnistock.sync.persister import Persister
from tests.integration.conftest import PARTITIONS, Stack
from tests.integration.test_supervision import hold, running, status_of, stock_up
from tests.integration.workload import churn, ledger_ids, locations, stream_event_ids


async def _ledger_row(db: asyncpg.Pool, loc: str, version: int, age_s: float) -> None:
    await db.execute(
        "INSERT INTO ledger (event_id, partition, ts, location, sku, kind, reason, actor,"
        " delta_on_hand, delta_reserved, on_hand, reserved, safety_stock, version)"
        " VALUES ($1, 0, now() - $2 * interval '1 second', $3, 's', 'adjust', 'receipt', 'test',"
        " 1, 0, $4, 0, 0, $4)",
        f"0:{loc}-{version}",
        age_s,
        loc,
        version,
    )


async def _reservation(db: asyncpg.Pool, rid: str, loc: str, status: str, age_s: float) -> None:
    await db.execute(
        "INSERT INTO reservations (id, location, status, created_at, expires_at, doc, event_ms,"
        " event_seq) VALUES ($1, $2, $3, now(), now(), '{}'::jsonb,"
        " (extract(epoch FROM now()) * 1000)::bigint - $4::bigint * 1000, 0)",
        rid,
        loc,
        status,
        age_s,
    )


async def _idempotency(db: asyncpg.Pool, key: str, expires_in_s: float) -> None:
    await db.execute(
        "INSERT INTO idempotency (key, record, expires_at)"
        " VALUES ($1, 'x', now() + $2 * interval '1 second')",
        key,
        expires_in_s,
    )


async def _left(db: asyncpg.Pool, uid: str) -> dict[str, list[Any]]:
    ledger = await db.fetch(
        "SELECT version FROM ledger WHERE location = $1 ORDER BY version", f"{uid}-l"
    )
    res = await db.fetch("SELECT id FROM reservations WHERE id LIKE $1 ORDER BY id", f"{uid}%")
    idem = await db.fetch("SELECT key FROM idempotency WHERE key LIKE $1 ORDER BY key", f"{uid}%")
    return {
        "ledger": [r["version"] for r in ledger],
        "reservations": [r["id"] for r in res],
        "idempotency": [r["key"] for r in idem],
    }


async def test_pruning_deletes_exactly_what_is_past_retention(stack: Stack, uid: str) -> None:
    db = stack.db
    # Ledger: versions 1-5 are 11 days old, 6-8 are 9 days old (retention: 10 days).
    for v in range(1, 9):
        await _ledger_row(db, f"{uid}-l", v, (11 if v <= 5 else 9) * DAY)
    # Reservations: finished ones ended 11 days ago go; ones ended 9 days ago and active ones
    # (however old) stay.
    for rid, status, age in [
        ("a-committed-old", "committed", 11),
        ("b-released-old", "released", 11),
        ("c-expired-old", "expired", 12),
        ("d-committed-young", "committed", 9),
        ("e-active-old", "active", 30),
        ("f-active-young", "active", 1),
    ]:
        await _reservation(db, f"{uid}{rid}", f"{uid}-l", status, age * DAY)
    # Idempotency records: two expired, two live.
    for key, expires_in in [("-a", -60), ("-b", -1), ("-c", 30), ("-d", 3600)]:
        await _idempotency(db, f"{uid}{key}", expires_in)

    done = await prune_once(
        db, Retention(ledger_seconds=10 * DAY, reservations_seconds=10 * DAY, batch=2)
    )
    assert done == {"ledger": 5, "reservations": 3, "sourcing_holds": 0, "idempotency": 2}
    assert await _left(db, uid) == {
        "ledger": [6, 7, 8],
        "reservations": [f"{uid}d-committed-young", f"{uid}e-active-old", f"{uid}f-active-young"],
        "idempotency": [f"{uid}-c", f"{uid}-d"],
    }
    # Again: nothing more is past retention.
    assert await prune_once(
        db, Retention(ledger_seconds=10 * DAY, reservations_seconds=10 * DAY, batch=2)
    ) == {"ledger": 0, "reservations": 0, "sourcing_holds": 0, "idempotency": 0}


async def test_zero_retention_keeps_ledger_and_reservations_for_ever(
    stack: Stack, uid: str
) -> None:
    db = stack.db
    await _ledger_row(db, f"{uid}-l", 1, 5000 * DAY)
    await _reservation(db, f"{uid}old", f"{uid}-l", "released", 5000 * DAY)
    done = await prune_once(db, Retention(ledger_seconds=0, reservations_seconds=0, batch=10))
    assert done == {"idempotency": 0}
    assert await _left(db, uid) == {
        "ledger": [1],
        "reservations": [f"{uid}old"],
        "idempotency": [],
    }


async def test_concurrent_pruners_under_write_load_delete_each_old_row_once(
    stack: Stack, uid: str
) -> None:
    """Four instances prune at once (small batches) while the persister writes a churn: every
    row past retention is deleted exactly once, nothing younger and nothing just written."""
    db = stack.db
    await db.execute(
        "INSERT INTO ledger (event_id, partition, ts, location, sku, kind, reason, actor,"
        " delta_on_hand, delta_reserved, on_hand, reserved, safety_stock, version)"
        " SELECT '0:' || $1 || '-' || g, 0,"
        " now() - CASE WHEN g <= 3000 THEN interval '11 days' ELSE interval '9 days' END"
        "   + g * interval '1 ms',"
        " $1, 's', 'adjust', 'receipt', 'test', 1, 0, g, 0, 0, g"
        " FROM generate_series(1, 3200) AS g",
        f"{uid}-h",
    )
    await db.execute(
        "INSERT INTO reservations (id, location, status, created_at, expires_at, doc, event_ms,"
        " event_seq) SELECT $1 || g, $1, CASE WHEN g % 10 = 0 THEN 'active' ELSE 'released' END,"
        " now(), now(), '{}'::jsonb,"
        " (extract(epoch FROM now()) * 1000)::bigint - CASE WHEN g <= 600 THEN 11 ELSE 9 END"
        "   * 86400000::bigint, 0"
        " FROM generate_series(1, 700) AS g",
        f"{uid}-r",
    )
    locs = await locations(stack.store, uid)
    retention = Retention(ledger_seconds=10 * DAY, reservations_seconds=10 * DAY, batch=50)
    persister = Persister(stack.redis, stack.db, stack.partitions, batch=64)

    async def write_and_persist() -> None:
        for seed in range(3):
            await churn(stack.store, locs, 100, seed=seed)
            await persister.drain()

    # Everything past retention in the database (earlier tests of this module left some too).
    old_ledger = await db.fetchval(
        "SELECT count(*) FROM ledger WHERE ts < now() - interval '10 days'"
    )
    old_reservations = await db.fetchval(
        "SELECT count(*) FROM reservations WHERE status <> 'active'"
        " AND event_ms < (extract(epoch FROM now()) * 1000)::bigint - 10 * 86400000::bigint"
    )
    assert old_ledger >= 3000 and old_reservations >= 540
    results = await asyncio.gather(
        *(prune_once(db, retention) for _ in range(4)), write_and_persist()
    )
    pruned = [r for r in results if r is not None]
    assert sum(r["ledger"] for r in pruned) == old_ledger
    assert sum(r["reservations"] for r in pruned) == old_reservations
    versions = await db.fetch(
        "SELECT version FROM ledger WHERE location = $1 ORDER BY version", f"{uid}-h"
    )
    assert [r["version"] for r in versions] == list(range(3001, 3201))
    left = await db.fetch(
        "SELECT status, count(*) AS n FROM reservations WHERE location = $1 GROUP BY status",
        f"{uid}-r",
    )
    assert {r["status"]: r["n"] for r in left} == {"active": 70, "released": 90}
    await persister.drain()
    assert set(await ledger_ids(db, locs)) == await stream_event_ids(stack.store, locs)


def _metric(text: str, table: str) -> float:
    found = re.search(rf'^omnistock_pruned_rows_total{{table="{table}"}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


async def _wait(what: str, check: Any, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.1)


async def test_finished_reservations_leave_redis_then_postgres_and_history_still_answers(
    stack: Stack, uid: str
) -> None:
    retention = 2  # seconds in Redis
    async with running(
        stack,
        finished_reservation_retention_seconds=retention,
        ledger_retention_days=1,
        reservation_retention_days=1,
        stream_retention_seconds=0,
        prune_interval_seconds=0.2,
    ) as (svc, client):
        await stock_up(client, uid, s=10)  # version 1
        for _ in range(2):  # versions 2, 3
            item = {"sku": "s", "location": uid, "delta": 1, "reason": "receipt"}
            assert (
                await client.post("/v1/adjustments", json={"adjustments": [item]})
            ).status_code == 200
        committed = await hold(client, uid, "s", 600)  # version 4
        assert (await client.post(f"/v1/reservations/{committed['id']}/commit")).status_code == 200
        released = await hold(client, uid, "s", 600)  # version 6 (commit was 5)
        assert (await client.post(f"/v1/reservations/{released['id']}/release")).status_code == 200
        expired = await hold(client, uid, "s", 1)
        await _wait("not expired", lambda: _is(client, expired["id"], "expired"))

        # Every way of finishing leaves the reservation in Redis for `retention` seconds only.
        for doc in (committed, released, expired):
            key = keys.reservation(reservation_partition(doc["id"], PARTITIONS), doc["id"])
            ttl = await stack.redis.pttl(key)
            assert ttl == -2 or 0 < ttl <= retention * 1000, (doc["id"], ttl)

        async def gone_from_redis() -> bool:
            for doc in (committed, released, expired):
                if await svc.store.get_reservation(doc["id"]) is not None:
                    return False
            return True

        await _wait("finished reservations stayed in Redis", gone_from_redis)
        await _wait_persisted(stack)
        # Reads fall back to Postgres, the record.
        assert await status_of(client, committed["id"]) == "committed"
        assert await status_of(client, released["id"]) == "released"
        assert await status_of(client, expired["id"]) == "expired"
        refused = await client.post(f"/v1/reservations/{committed['id']}/release")
        assert refused.status_code == 409, refused.text

        # Two days pass for the first two ledger rows and the committed reservation.
        await stack.db.execute(
            "UPDATE ledger SET ts = ts - interval '2 days' WHERE location = $1 AND version <= 2",
            uid,
        )
        await stack.db.execute(
            "UPDATE reservations SET event_ms = event_ms - $2 WHERE id = $1",
            committed["id"],
            2 * DAY * 1000,
        )

        async def pruned() -> bool:
            rows = await stack.db.fetchval(
                "SELECT count(*) FROM ledger WHERE location = $1 AND version <= 2", uid
            )
            res = await stack.db.fetchval(
                "SELECT count(*) FROM reservations WHERE id = $1", committed["id"]
            )
            return bool(rows == 0 and res == 0)

        await _wait("the pruning loop did not prune", pruned)
        text = (await client.get("/metrics")).text
        assert _metric(text, "ledger") >= 2 and _metric(text, "reservations") >= 1
        kept = await stack.db.fetchval("SELECT count(*) FROM ledger WHERE location = $1", uid)
        assert kept == 7  # versions 3-9: younger than the retention
        history = await client.get(f"/v1/stock/{uid}/s/history")
        assert history.status_code == 200, history.text
        versions = [item["version"] for item in history.json()["items"]]
        assert versions == list(range(max(versions), 2, -1)) and versions[-1] == 3
        gone = await client.get(f"/v1/reservations/{committed['id']}")
        assert gone.status_code == 404, gone.text
        assert await status_of(client, released["id"]) == "released"
        assert (await client.get("/readyz")).status_code == 200


async def _is(client: httpx.AsyncClient, rid: str, status: str) -> bool:
    return await status_of(client, rid) == status


async def _wait_persisted(stack: Stack) -> None:
    async def drained() -> bool:
        return await backlog(stack.redis, PARTITIONS) == 0

    await _wait("the backlog did not drain", drained)
