"""Crash windows of a sourcing hold: what a process killed between the parts of a hold leaves
behind is finished or undone by a real worker's courier within 2 s, with the ledger (Postgres)
showing every reserve and undo; and a real ``omnistock serve`` SIGKILLed while concurrent holds
run leaves nothing half held once a worker runs."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx

from omnistock.domain.ids import new_reservation_id, new_sourcing_id, partition_of
from omnistock.domain.sourcing_holds import (
    FINISHED,
    HoldPart,
    HoldRequest,
    SourcingHold,
    decode_hold,
)
from omnistock.embedded import free_port
from omnistock.redis.scripts import OK, VOID
from omnistock.redis.store import StockStore
from omnistock.redis.streams import backlog
from omnistock.worker import open_worker
from tests.e2e.conftest import ADMIN_KEY
from tests.integration.conftest import PARTITIONS, Stack
from tests.integration.test_supervision import running, settings_for, stock_up

OMNISTOCK = str(Path(sys.executable).parent / "omnistock")
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}


def spread(prefix: str, count: int) -> list[str]:
    """``count`` location ids in distinct partitions."""
    found: dict[int, str] = {}
    n = 0
    while len(found) < count:
        found.setdefault(partition_of(f"{prefix}-{n}", PARTITIONS), f"{prefix}-{n}")
        n += 1
    return list(found.values())


def new_record(store: StockStore, parts: list[HoldPart]) -> SourcingHold:
    p = store.partition(parts[0].location)
    return SourcingHold(
        id=new_sourcing_id(p), status="pending", attempt=1,
        request=HoldRequest(lines=[ln for pt in parts for ln in pt.lines], fulfillment="ship",
                            ttl_ms=600_000, ref="crash"),
        parts=parts, why="test", actor="killed-process", created_at=0, updated_at=0,
        lease_until=0,
    )  # fmt: skip


def part(store: StockStore, loc: str, **skus: int) -> HoldPart:
    return HoldPart(
        reservation=new_reservation_id(store.partition(loc)), location=loc, lines=list(skus.items())
    )


async def settled(store: StockStore, hold_id: str, within: float) -> SourcingHold:
    deadline = time.monotonic() + within
    while True:
        record = await store.get_hold(hold_id)
        assert record is not None
        if record.status in FINISHED:
            return record
        assert time.monotonic() < deadline, f"{hold_id} still {record.status} after {within}s"
        await asyncio.sleep(0.02)


async def ledger_rows(stack: Stack, loc: str, sku: str) -> list[tuple[str, str, str | None]]:
    """The ledger of a position, oldest first, once the persister has caught up (with the
    backlog earlier tests left on the shared servers, on a loaded machine: a fair 30 s)."""
    deadline = time.monotonic() + 30
    while await backlog(stack.redis, PARTITIONS):
        assert time.monotonic() < deadline, "the backlog did not drain"
        await asyncio.sleep(0.05)
    rows = await stack.db.fetch(
        "SELECT kind, reason, reservation_id FROM ledger WHERE location = $1 AND sku = $2"
        " ORDER BY version",
        loc,
        sku,
    )
    return [(r["kind"], r["reason"], r["reservation_id"]) for r in rows]


async def test_a_hold_left_between_its_parts_is_finished_by_the_courier(
    stack: Stack, uid: str
) -> None:
    async with running(stack, worker=False) as (svc, client):
        a, b, c = spread(uid, 3)
        await stock_up(client, a, x=2)
        await stock_up(client, b, y=2)
        await stock_up(client, c, z=2)
        store = svc.store
        parts = [part(store, a, x=1), part(store, b, y=1), part(store, c, z=1)]
        record = new_record(store, parts)
        # Exactly what a process killed after the first part's hold leaves: begun, one part held.
        await store.begin_hold(store.partition(a), record, None)
        assert (await store.hold_part(record, parts[0])).code == OK
        started = time.monotonic()
        async with open_worker(settings_for(stack)):
            final = await settled(store, record.id, within=2.0)
            assert time.monotonic() - started < 2.0
            # The worker's persister writes the ledger: read it while the worker runs.
            rows = await ledger_rows(stack, b, "y")
        assert final.status == "held"
        for pt in parts:
            doc = await store.get_reservation(pt.reservation)
            assert doc is not None and doc.status == "active" and doc.sourcing == record.id
        for loc, sku in ((a, "x"), (b, "y"), (c, "z")):
            assert (await client.get(f"/v1/stock/{loc}/{sku}")).json()["reserved"] == 1
        assert rows == [
            ("adjust", "receipt", None),
            ("reserve", "reserve", parts[1].reservation),
        ]


async def test_a_hold_with_a_voided_part_is_undone_by_the_courier(stack: Stack, uid: str) -> None:
    async with running(stack, worker=False) as (svc, client):
        a, b = spread(uid, 2)
        await stock_up(client, a, x=2)
        await stock_up(client, b, y=2)
        store = svc.store
        parts = [part(store, a, x=1), part(store, b, y=1)]
        record = new_record(store, parts)
        await store.begin_hold(store.partition(a), record, None)
        assert (await store.hold_part(record, parts[0])).code == OK
        # The second part was undone (voided) before its hold arrived.
        assert await store.undo_part(parts[1], "other-driver") == "voided"
        started = time.monotonic()
        async with open_worker(settings_for(stack)):
            final = await settled(store, record.id, within=2.0)
            assert time.monotonic() - started < 2.0
            # The late hold of the voided part does nothing.
            assert (await store.hold_part(record, parts[1])).code == VOID
            # The worker's persister writes the ledger: read it while the worker runs.
            rows_a = await ledger_rows(stack, a, "x")
            rows_b = await ledger_rows(stack, b, "y")
        assert final.status == "failed"
        first = await store.get_reservation(parts[0].reservation)
        assert first is not None and first.status == "released"
        assert await store.get_reservation(parts[1].reservation) is None
        assert (await client.get(f"/v1/stock/{a}/x")).json()["reserved"] == 0
        assert (await client.get(f"/v1/stock/{b}/y")).json()["reserved"] == 0
        assert rows_a == [
            ("adjust", "receipt", None),
            ("reserve", "reserve", parts[0].reservation),
            ("release", "sourcing_undo", parts[0].reservation),
        ]
        assert rows_b == [("adjust", "receipt", None)]


def serve_env(stack: Stack) -> dict[str, str]:
    settings = settings_for(stack)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNISTOCK_")}
    env.update(
        OMNISTOCK_REDIS_URL=str(settings.redis_url),
        OMNISTOCK_DATABASE_URL=str(settings.database_url),
        OMNISTOCK_ADMIN_KEY=ADMIN_KEY,
        OMNISTOCK_PARTITIONS=str(PARTITIONS),
        OMNISTOCK_RATE_LIMITS=str(settings.rate_limits),
        OMNISTOCK_LOG_LEVEL="warning",
        # Each script's events reach Postgres before the next step: the steps of a hold take
        # longer, so the kill lands between the parts of some holds.
        OMNISTOCK_ACK="postgres",
    )
    return env


def start_serve(stack: Stack, port: int, log: Path) -> subprocess.Popen[bytes]:
    """``omnistock serve --no-worker`` on the stack's servers, as a child process."""
    with open(log, "wb") as sink:
        return subprocess.Popen(
            [OMNISTOCK, "serve", "--no-worker", "--port", str(port)],
            env=serve_env(stack),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )


async def test_sigkill_of_serve_during_concurrent_holds_leaves_nothing_half_held(
    stack: Stack, uid: str, tmp_path: Path
) -> None:
    sites = spread(uid, 4)
    async with running(stack, worker=False) as (svc, client):
        # Plenty: the buyers are still holding when the process is killed.
        await stock_up(client, sites[0], x=4000)
        await stock_up(client, sites[1], y=4000)
        await stock_up(client, sites[2], x=2000, y=2000)
        await stock_up(client, sites[3], z=6000)
        for n, loc in enumerate(sites):  # (after stock_up, which puts a plain store)
            body = {"name": loc, "kind": "warehouse", "ship_from": True, "groups": [uid],
                    "priority": n + 1}  # fmt: skip
            resp = await client.put(f"/v1/locations/{loc}", json=body)
            assert resp.status_code in (200, 201), resp.text
        store = svc.store

    port = free_port()
    log = tmp_path / "serve.log"
    proc = start_serve(stack, port, log)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        async with httpx.AsyncClient(timeout=2) as probe:
            while True:
                assert proc.poll() is None, log.read_text()
                try:
                    if (await probe.get(f"{url}/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, log.read_text()
                await asyncio.sleep(0.2)
        body = {
            "lines": [{"sku": "x", "qty": 1}, {"sku": "y", "qty": 1}, {"sku": "z", "qty": 1}],
            "fulfillment": "ship",
            "group": uid,
        }
        async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=30) as shop:
            answers: Counter[int] = Counter()

            async def buyer() -> None:
                while True:
                    resp = await shop.post("/v1/sourcing/reservations", json=body)
                    answers[resp.status_code] += 1

            buyers = [asyncio.create_task(buyer()) for _ in range(32)]
            await asyncio.sleep(1.0)
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
            results = await asyncio.gather(*buyers, return_exceptions=True)
            assert all(isinstance(r, httpx.TransportError) for r in results), results
            assert set(answers) == {201} and answers[201] > 0, answers
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)

    found = await all_records(stack)
    records = list(found)
    assert set(found.values()) - FINISHED, "the kill left no hold between its parts"
    async with running(stack, worker=False) as (svc, client):
        store = svc.store
        started = time.monotonic()
        async with open_worker(settings_for(stack)):
            for hold_id in records:
                await settled(store, hold_id, within=max(0.1, 2.0 - (time.monotonic() - started)))
        active: Counter[tuple[str, str]] = Counter()
        for hold_id in records:
            record = await store.get_hold(hold_id)
            assert record is not None
            docs = [await store.get_reservation(pt.reservation) for pt in record.parts]
            if record.status == "held":
                assert all(d is not None and d.status == "active" for d in docs), hold_id
                for d in docs:
                    assert d is not None
                    for sku, _qty, held, _ in d.lines:
                        active[(d.location, sku)] += held
            else:
                assert record.status == "failed", record.status
                assert all(d is None or d.status != "active" for d in docs), hold_id
        for loc in sites:
            for sku in ("x", "y", "z"):
                resp = await client.get(f"/v1/stock/{loc}/{sku}")
                reserved = resp.json()["reserved"] if resp.status_code == 200 else 0
                assert reserved == active[(loc, sku)], (loc, sku)


async def all_records(stack: Stack) -> dict[str, str]:
    """Every sourcing hold record in Redis: its status by id."""
    found = {}
    async for key in stack.redis.scan_iter(match="os:{p*}:src:*", count=1000):
        raw = await stack.redis.hget(key, "doc")
        if raw is not None:
            record = decode_hold(raw)
            found[record.id] = record.status
    return found
