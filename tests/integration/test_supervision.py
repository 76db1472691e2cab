"""Supervised background work on a running service: expiry resumes after a real rebuild window,
a loop that keeps raising is restarted, counted in /metrics and shown by /readyz until it
recovers, and a malformed stream entry does not stop the persister."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec
import pytest

from omnistock.domain.clock import parse_rfc3339
from omnistock.domain.ids import partition_of
from omnistock.redis import keys
from omnistock.services import Services
from omnistock.sync import rebuild as rebuild_module
from omnistock.sync.rebuild import rebuild_locked
from tests.e2e.conftest import ADMIN_KEY, AppServer, app_settings
from tests.events import event_fields
from tests.integration.conftest import PARTITIONS, Stack

AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}


def settings_for(stack: Stack, **overrides: Any) -> Any:
    """App settings on the stack's own servers (``overrides``: settings fields)."""
    return app_settings(
        stack.servers, partitions=PARTITIONS, redis_url=stack.servers.redis_url, **overrides
    )


@contextlib.asynccontextmanager
async def running(
    stack: Stack, *, worker: bool = True, **overrides: Any
) -> AsyncIterator[tuple[Services, httpx.AsyncClient]]:
    """A service on the stack's own servers, with its Services (to look inside) and a client;
    ``worker=False``: without a worker of its own (as ``serve --no-worker``)."""
    server = AppServer(settings_for(stack, **overrides), worker=worker)
    await server.start()
    try:
        svc: Services = server.server.config.app.state.services  # type: ignore[attr-defined]
        async with httpx.AsyncClient(base_url=server.url, headers=AUTH, timeout=30) as client:
            yield svc, client
    finally:
        await server.stop()


async def stock_up(client: httpx.AsyncClient, loc: str, **skus: int) -> None:
    resp = await client.put(f"/v1/locations/{loc}", json={"name": loc, "kind": "store"})
    assert resp.status_code in (200, 201), resp.text
    items = [{"sku": s, "location": loc, "delta": q, "reason": "receipt"} for s, q in skus.items()]
    resp = await client.post("/v1/adjustments", json={"adjustments": items})
    assert resp.status_code == 200, resp.text


async def hold(client: httpx.AsyncClient, loc: str, sku: str, ttl: int) -> dict[str, Any]:
    body = {"location": loc, "lines": [{"sku": sku, "qty": 1}], "ttl_seconds": ttl}
    resp = await client.post("/v1/reservations", json=body)
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


async def status_of(client: httpx.AsyncClient, rid: str) -> str:
    resp = await client.get(f"/v1/reservations/{rid}")
    assert resp.status_code == 200, resp.text
    return str(resp.json()["status"])


def restarts(metrics_text: str, loop: str) -> float:
    found = re.search(
        rf'^omnistock_background_restarts_total{{loop="{loop}"}} (\S+)$', metrics_text, re.M
    )
    return float(found.group(1)) if found else 0.0


async def test_expiry_resumes_within_2s_after_a_rebuild_window(
    stack: Stack, uid: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defect 1: reservations falling due while a rebuild holds every partition "not ready" are
    expired within 2 s of the rebuild's end, exactly once, with two instances sweeping (the
    sweeper used to die on the first NOT_READY, and expiry stopped for good)."""
    window = 2.5
    async with running(stack) as (svc, client), running(stack) as (other, _):
        locs = [f"{uid}-{i}" for i in range(4)]
        for loc in locs:
            await stock_up(client, loc, s=50)
        short = await asyncio.gather(
            *(hold(client, loc, "s", 1) for loc in locs for _ in range(10))
        )
        keeper = await hold(client, locs[0], "s", 3600)
        blocked: list[str] = []
        restore = rebuild_module._restore_reservations

        async def slow_restore(redis: Any, db: Any, partitions: int) -> int:
            # The rebuild's window (streams set aside: every script answers NOT_READY), held
            # open past the short reservations' expiry while both instances keep sweeping.
            await asyncio.sleep(window)
            for doc in short:
                raw = await redis.hget(
                    keys.reservation(partition_of(doc["location"], partitions), doc["id"]), "doc"
                )
                due = parse_rfc3339(doc["expires_at"]) / 1000 < time.time()
                if due and msgspec.json.decode(raw)["status"] == "active":
                    blocked.append(doc["id"])
            return await restore(redis, db, partitions)

        monkeypatch.setattr(rebuild_module, "_restore_reservations", slow_restore)
        restored = await rebuild_locked(stack.redis, stack.db, stack.scripts, PARTITIONS)
        ended = time.time()
        assert restored.reservations >= len(short) + 1
        # The sweepers really met the window: every short reservation was due and still active.
        assert sorted(blocked) == sorted(doc["id"] for doc in short)
        pending = {doc["id"] for doc in short}
        while pending:
            for rid in list(pending):
                if await status_of(client, rid) == "expired":
                    pending.discard(rid)
            assert time.time() <= ended + 2.0, f"not expired 2 s after the rebuild: {pending}"
            await asyncio.sleep(0.05)
        assert await status_of(client, keeper["id"]) == "active"
        for loc in locs:  # each unit came back once: only the keeper holds one
            position = (await client.get(f"/v1/stock/{loc}/s")).json()
            assert (position["on_hand"], position["reserved"]) == (50, int(loc == locs[0]))
        await asyncio.sleep(0.5)  # more sweeps on both instances: nothing expires twice
        expired_events: Counter[str] = Counter()
        for p in {partition_of(loc, PARTITIONS) for loc in locs}:
            for _, fields in await stack.redis.xrange(keys.stream(p)):
                event = event_fields(fields)
                if event["t"] == "p" and event["kind"] == "expire":
                    expired_events[event["rid"]] += 1
        assert expired_events == Counter({doc["id"]: 1 for doc in short})
        # Expiry keeps working afterwards, and nothing had to be restarted for it.
        later = await hold(client, locs[1], "s", 1)
        deadline = parse_rfc3339(later["expires_at"]) / 1000 + 2.0
        while await status_of(client, later["id"]) != "expired":
            assert time.time() <= deadline, "expiry stopped after the rebuild"
            await asyncio.sleep(0.05)
        for instance in (svc, other):
            assert instance.supervisor.loops["sweeper"].restarts == 0
        assert (await client.get("/readyz")).status_code == 200


async def test_a_failing_loop_is_restarted_counted_and_shown_until_it_recovers(
    stack: Stack, uid: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running(stack, background_healthy_seconds=1.0) as (svc, client):
        await stock_up(client, uid, s=5)
        assert (await client.get("/readyz")).status_code == 200
        real = svc.store.due_reservations
        calls = 0

        async def broken(limit_per_partition: int = 200) -> list[str]:
            nonlocal calls
            calls += 1
            raise RuntimeError("sweeper fault for the test")

        monkeypatch.setattr(svc.store, "due_reservations", broken)
        doc = await hold(client, uid, "s", 1)
        deadline = time.monotonic() + 10
        while True:
            ready = await client.get("/readyz")
            metrics = (await client.get("/metrics")).text
            if ready.status_code == 503 and restarts(metrics, "sweeper") >= 3:
                break
            assert time.monotonic() < deadline, (ready.text, metrics)
            await asyncio.sleep(0.1)
        body = ready.json()
        assert ready.headers["content-type"].startswith("application/problem+json")
        assert body["failing_loops"] == ["sweeper"]
        assert "sweeper loop" in body["detail"] and "RuntimeError" in body["detail"]
        assert "omnistock_background_loops_failing 1" in metrics
        assert calls >= 3  # restarted (and failing again) each time, with backoff between
        await asyncio.sleep(1.5)  # past the reservation's expiry: it cannot expire now
        assert await status_of(client, doc["id"]) == "active"

        monkeypatch.setattr(svc.store, "due_reservations", real)
        deadline = time.monotonic() + 15
        while (await client.get("/readyz")).status_code != 200:
            assert time.monotonic() < deadline, "readyz did not recover"
            await asyncio.sleep(0.1)
        assert await status_of(client, doc["id"]) == "expired"
        metrics = (await client.get("/metrics")).text
        assert "omnistock_background_loops_failing 0" in metrics
        count = restarts(metrics, "sweeper")
        await asyncio.sleep(1.0)
        assert restarts((await client.get("/metrics")).text, "sweeper") == count  # healthy now


async def test_a_malformed_stream_entry_does_not_stop_the_persister(stack: Stack, uid: str) -> None:
    """Defect 1 (persister): an entry that does not decode, and one Postgres refuses, are set
    aside (quarantined, counted); every later event still reaches Postgres."""
    async with running(stack) as (svc, client):
        await stock_up(client, uid, s=1)
        stream = keys.stream(partition_of(uid, PARTITIONS))
        bad = [
            await stack.redis.xadd(stream, {"p": b"\xc1 not msgpack"}),
            await stack.redis.xadd(stream, {"r": b'{"id": 1'}),
        ]
        for i in range(20):
            item = {"sku": "s", "location": uid, "delta": 1, "reason": "receipt", "ref": f"r{i}"}
            resp = await client.post("/v1/adjustments", json={"adjustments": [item]})
            assert resp.status_code == 200, resp.text
        deadline = time.monotonic() + 15
        while True:
            persisted = await stack.db.fetchval(
                "SELECT on_hand FROM positions WHERE location = $1 AND sku = 's'", uid
            )
            if persisted == 21:
                break
            assert time.monotonic() < deadline, f"later events not persisted ({persisted})"
            await asyncio.sleep(0.1)
        p = partition_of(uid, PARTITIONS)
        rows = await stack.db.fetch(
            "SELECT event_id, error FROM quarantined_events WHERE event_id = ANY($1)"
            " ORDER BY event_id",
            [f"{p}:{entry.decode()}" for entry in bad],
        )
        assert [r["event_id"] for r in rows] == sorted(f"{p}:{e.decode()}" for e in bad)
        assert all(r["error"] for r in rows)
        ledger = await stack.db.fetchval("SELECT count(*) FROM ledger WHERE location = $1", uid)
        assert ledger == 21
        pending = await stack.redis.xpending(stream, "persister")
        assert pending["pending"] == 0
        assert svc.persister.quarantined == 2
        metrics = (await client.get("/metrics")).text
        assert "omnistock_persister_quarantined_total 2.0" in metrics
        assert (await client.get("/readyz")).status_code == 200
        assert svc.supervisor.loops["persister"].restarts == 0


async def test_the_persister_is_restarted_after_an_unexpected_exception(
    stack: Stack, uid: str
) -> None:
    """Defect 1 (persister): an exception that is neither I/O nor the entry's fault used to end
    the persister for good; now it is restarted, and the batch it was writing is claimed again
    and persisted with everything after it."""
    async with running(stack, persister_claim_idle_ms=300) as (svc, client):
        assert set(svc.supervisor.loops) == {
            "invalidations", "sweeper", "persister", "backlog", "trimmer", "watchdog", "pruner",
            "courier", "stream", "stream-clock", "stream-deletions", "looplag",
            "transfer-courier",
        }  # fmt: skip
        await stock_up(client, uid, s=1)
        faults = 0

        async def crash_twice(where: str) -> None:
            nonlocal faults
            if where == "before_commit" and faults < 2:
                faults += 1
                raise RuntimeError("persister fault for the test")

        svc.persister.fault = crash_twice
        for i in range(10):
            item = {"sku": "s", "location": uid, "delta": 1, "reason": "receipt", "ref": f"r{i}"}
            resp = await client.post("/v1/adjustments", json={"adjustments": [item]})
            assert resp.status_code == 200, resp.text
        deadline = time.monotonic() + 20
        while True:
            persisted = await stack.db.fetchval(
                "SELECT count(*) FROM ledger WHERE location = $1", uid
            )
            if persisted == 11:
                break
            assert time.monotonic() < deadline, f"persisted {persisted} of 11"
            await asyncio.sleep(0.1)
        assert faults == 2
        assert svc.supervisor.loops["persister"].restarts == 2
        metrics = (await client.get("/metrics")).text
        assert restarts(metrics, "persister") == 2
        assert (
            await stack.db.fetchval(
                "SELECT on_hand FROM positions WHERE location = $1 AND sku = 's'", uid
            )
            == 11
        )


async def test_a_reservation_that_cannot_be_expired_does_not_hold_back_the_others(
    stack: Stack, uid: str
) -> None:
    """A due member of an expiry set that is no reservation of ours (or whose record does not
    decode) is logged and skipped: the sweeper neither dies nor stops expiring the rest."""
    async with running(stack) as (svc, client):
        await stock_up(client, uid, s=5)
        p = partition_of(uid, PARTITIONS)
        rid = f"r{p}-{'x' * 20}"
        await stack.redis.hset(keys.reservation(p, rid), mapping={"doc": "{not json", "st": "x"})
        await stack.redis.zadd(keys.expiries(p), {"not-a-reservation": 0, rid: 1})
        try:
            doc = await hold(client, uid, "s", 1)
            deadline = parse_rfc3339(doc["expires_at"]) / 1000 + 2.0
            while await status_of(client, doc["id"]) != "expired":
                assert time.time() <= deadline, "expiry held back by a bad member"
                await asyncio.sleep(0.05)
            assert svc.supervisor.loops["sweeper"].restarts == 0
            assert (await client.get("/readyz")).status_code == 200
        finally:
            await stack.redis.zrem(keys.expiries(p), "not-a-reservation", rid)
            await stack.redis.delete(keys.reservation(p, rid))
