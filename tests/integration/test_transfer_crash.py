"""Crash windows of a transfer: what a process killed between a transfer's steps leaves behind
(the units gone from `from` but not yet incoming at `to`; a cancel begun but not finished) is
settled by a real worker's courier within 2 s, with the ledger (Postgres) showing every movement;
and a real ``omnistock serve`` SIGKILLed during concurrent transfers leaves every acknowledged
transfer whole, with the units per sku conserved, once a worker runs."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import httpx

from omnistock.domain.ids import new_transfer_id
from omnistock.domain.transfers import StoredTransfer, decode_transfer
from omnistock.embedded import free_port
from omnistock.redis import keys
from omnistock.redis.scripts import OK
from omnistock.redis.store import StockStore
from omnistock.worker import open_worker
from tests.e2e.conftest import ADMIN_KEY
from tests.integration.conftest import Stack
from tests.integration.test_sourcing_crash import ledger_rows, spread, start_serve
from tests.integration.test_supervision import running, settings_for, stock_up

AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}


async def place(client: httpx.AsyncClient, loc: str) -> None:
    resp = await client.put(f"/v1/locations/{loc}", json={"name": loc, "kind": "store"})
    assert resp.status_code in (200, 201), resp.text


async def settled(store: StockStore, transfer_id: str, within: float) -> StoredTransfer:
    """The record once nothing of it is pending (fails after ``within`` seconds)."""
    deadline = time.monotonic() + within
    while True:
        record = await store.get_transfer(transfer_id)
        assert record is not None
        if not record.pending:
            return record
        assert time.monotonic() < deadline, f"{transfer_id} still {record.status} after {within}s"
        await asyncio.sleep(0.02)


async def position(client: httpx.AsyncClient, loc: str, sku: str) -> tuple[int, int]:
    resp = await client.get(f"/v1/stock/{loc}/{sku}")
    if resp.status_code == 404:
        return 0, 0
    body = resp.json()
    return body["on_hand"], body["incoming"]


async def first_step_only(store: StockStore, src: str, dst: str, qty: int) -> StoredTransfer:
    """Exactly what a process killed right after a transfer's first script leaves."""
    record, _ = await store.create_transfer(
        transfer_id=new_transfer_id(store.partition(src)), source=src, to=dst, eta_ms=None,
        ref="crash", lines=[("x", qty)], actor="killed-process", idem=None,
    )  # fmt: skip
    assert record.pending and record.status == "in_transit"
    return record


async def test_a_transfer_left_after_its_first_step_is_made_whole(stack: Stack, uid: str) -> None:
    async with running(stack, worker=False) as (svc, client):
        src, dst = spread(uid, 2)
        await stock_up(client, src, x=5)
        await place(client, dst)
        store = svc.store
        record = await first_step_only(store, src, dst, 3)
        assert await position(client, src, "x") == (2, 0)
        assert await position(client, dst, "x") == (0, 0)  # the window: units in neither place
        started = time.monotonic()
        async with open_worker(settings_for(stack)):
            final = await settled(store, record.id, within=2.0)
            assert time.monotonic() - started < 2.0
            assert final.status == "in_transit"
            shadow = await store.get_shadow(dst, record.id)
            assert shadow is not None and shadow.status == "in_transit"
            assert await position(client, src, "x") == (2, 0)
            assert await position(client, dst, "x") == (0, 3)
            view = (await client.get(f"/v1/transfers/{record.id}")).json()
            assert view["status"] == "in_transit"
            resp = await client.post(f"/v1/transfers/{record.id}/receive", json={})
            assert resp.status_code == 200
            assert await position(client, dst, "x") == (3, 0)
            assert await ledger_rows(stack, src, "x") == [
                ("adjust", "receipt", None), ("transfer", "transfer_out", None),
            ]  # fmt: skip
            await ledger_rows(stack, dst, "x")  # (waits for the persister)
        rows = await stack.db.fetch(
            "SELECT reason, ref, delta_on_hand, delta_incoming FROM ledger"
            " WHERE location = $1 AND sku = 'x' ORDER BY version",
            dst,
        )
        assert [tuple(r) for r in rows] == [
            ("transfer_incoming", record.id, 0, 3), ("transfer_received", record.id, 3, -3),
        ]  # fmt: skip


async def test_a_receipt_arriving_first_writes_the_to_side_itself(stack: Stack, uid: str) -> None:
    async with running(stack, worker=False) as (svc, client):
        src, dst = spread(uid, 2)
        await stock_up(client, src, x=5)
        await place(client, dst)
        record = await first_step_only(svc.store, src, dst, 2)
        resp = await client.post(f"/v1/transfers/{record.id}/receive", json={})
        assert resp.status_code == 200, resp.text
        assert resp.json()["status"] == "received"
        assert await position(client, src, "x") == (3, 0)
        assert await position(client, dst, "x") == (2, 0)


async def test_a_cancel_left_between_its_steps_is_finished(stack: Stack, uid: str) -> None:
    async with running(stack, worker=False) as (svc, client):
        src, dst = spread(uid, 2)
        await stock_up(client, src, x=9)
        await place(client, dst)
        store = svc.store
        # One cancel killed after its first step, one after the `to` side was withdrawn.
        early = await first_step_only(store, src, dst, 2)
        late = await first_step_only(store, src, dst, 3)
        for record in (early, late):
            await store.drive_transfer(record, "driver")
        assert await position(client, dst, "x") == (0, 5)
        begun, _ = await store.begin_cancel(early.id, "killed-process", None)
        assert begun.status == "cancelling" and begun.pending
        begun_late, _ = await store.begin_cancel(late.id, "killed-process", None)
        assert (await store.withdraw_transfer(begun_late, "killed-process")).code == OK
        assert await position(client, src, "x") == (4, 0)
        assert await position(client, dst, "x") == (0, 2)
        # A receipt meanwhile finds the withdrawn one cancelled.
        resp = await client.post(f"/v1/transfers/{late.id}/receive", json={})
        assert resp.status_code == 409 and resp.json()["transfer_status"] == "cancelled"
        started = time.monotonic()
        async with open_worker(settings_for(stack)):
            for record in (early, late):
                final = await settled(store, record.id, within=2.0)
                assert final.status == "cancelled"
            assert time.monotonic() - started < 2.0
            reasons = [r[1] for r in await ledger_rows(stack, src, "x")]
        assert await position(client, src, "x") == (9, 0)
        assert await position(client, dst, "x") == (0, 0)
        for record in (early, late):
            got = (await client.get(f"/v1/transfers/{record.id}")).json()
            assert got["status"] == "cancelled"
        assert sorted(reasons) == sorted(
            ["receipt"] + ["transfer_out"] * 2 + ["transfer_cancelled"] * 2
        )


async def all_records(stack: Stack) -> dict[str, StoredTransfer]:
    """Every transfer record in Redis, by id."""
    found = {}
    async for key in stack.redis.scan_iter(match=keys.TRANSFER_PATTERN, count=1000):
        raw = await stack.redis.hget(key, "doc")
        if raw is not None:
            record = decode_transfer(raw)
            found[record.id] = record
    return found


async def test_sigkill_of_serve_during_concurrent_transfers_leaves_every_one_whole(
    stack: Stack, uid: str, tmp_path: Path
) -> None:
    src, dst, dst2 = spread(uid, 3)
    start_x, start_y = 6000, 3000
    async with running(stack, worker=False) as (svc, client):
        await stock_up(client, src, x=start_x, y=start_y)
        await place(client, dst)
        await place(client, dst2)

    port = free_port()
    log = tmp_path / "serve.log"
    proc = start_serve(stack, port, log)
    acked: set[str] = set()
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
        async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=30) as shop:
            answers: list[int] = []

            async def sender(n: int) -> None:
                to = dst if n % 2 else dst2
                body = {"from": src, "to": to,
                        "lines": [{"sku": "x", "qty": 2}, {"sku": "y", "qty": 1}]}  # fmt: skip
                while True:
                    resp = await shop.post("/v1/transfers", json=body)
                    answers.append(resp.status_code)
                    if resp.status_code == 201:
                        acked.add(resp.json()["id"])

            senders = [asyncio.create_task(sender(n)) for n in range(32)]
            warm = time.monotonic() + 30
            while len(acked) < 50:  # (under load the first answers may take a while)
                assert time.monotonic() < warm and proc.poll() is None, log.read_text()[-3000:]
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
            results = await asyncio.gather(*senders, return_exceptions=True)
            assert all(isinstance(r, httpx.TransportError) for r in results), results
            assert set(answers) == {201} and acked, answers
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)

    found = {tid: r for tid, r in (await all_records(stack)).items() if r.from_ == src}
    assert acked <= set(found)
    assert any(r.pending for r in found.values()), "the kill left no transfer between its steps"
    async with running(stack, worker=False) as (svc, client):
        store = svc.store
        started = time.monotonic()
        async with open_worker(settings_for(stack)):
            for tid in found:
                await settled(store, tid, within=max(0.1, 2.0 - (time.monotonic() - started)))
        incoming = {dst: 0, dst2: 0}
        for tid, record in found.items():
            shadow = await store.get_shadow(record.to, tid)
            assert shadow is not None and shadow.status == "in_transit", tid
            assert [(ln.sku, ln.qty) for ln in shadow.lines] == [("x", 2), ("y", 1)]
            incoming[record.to] += 2
        n = len(found)
        assert await position(client, src, "x") == (start_x - 2 * n, 0)
        assert await position(client, src, "y") == (start_y - n, 0)
        for to in (dst, dst2):
            assert await position(client, to, "x") == (0, incoming[to])
        # Conserved per sku: on hand everywhere + in transit.
        total_y = sum([(await position(client, loc, "y"))[0] for loc in (src, dst, dst2)])
        in_transit_y = sum([(await position(client, loc, "y"))[1] for loc in (dst, dst2)])
        assert total_y + in_transit_y == start_y


async def test_a_receipt_during_a_cancel_before_arrival_is_refused(stack: Stack, uid: str) -> None:
    async with running(stack, worker=False) as (svc, client):
        src, dst = spread(uid, 2)
        await stock_up(client, src, x=5)
        await place(client, dst)
        record = await first_step_only(svc.store, src, dst, 2)
        await svc.store.begin_cancel(record.id, "killed-process", None)
        resp = await client.post(f"/v1/transfers/{record.id}/receive", json={})
        assert resp.status_code == 409 and resp.json()["transfer_status"] == "in_transit"
        assert await svc.store.get_shadow(dst, record.id) is None  # nothing written at `to`
        async with open_worker(settings_for(stack)):
            final = await settled(svc.store, record.id, within=2.0)
        assert final.status == "cancelled"
        assert await position(client, src, "x") == (5, 0)
        assert await position(client, dst, "x") == (0, 0)
