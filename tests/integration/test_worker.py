"""The worker runtime beside a serving app that runs none: two workers on one Valkey + Postgres
expire each reservation exactly once and persist everything; /readyz and /metrics of the serving
process show the workers' health from Redis (no live worker -> 503 naming it)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from typing import Any

import httpx
import pytest

from omnistock.domain.ids import partition_of
from omnistock.redis import keys
from omnistock.redis.streams import backlog
from omnistock.services import Services
from omnistock.sync.reconcile import Reconciler
from omnistock.worker import WORKER_LOOPS, open_worker
from tests.events import event_fields
from tests.integration.conftest import PARTITIONS, Stack
from tests.integration.test_supervision import running, settings_for, status_of, stock_up


def serving_alone(
    stack: Stack, **overrides: Any
) -> contextlib.AbstractAsyncContextManager[tuple[Services, httpx.AsyncClient]]:
    """A serving app without a worker of its own (as ``serve --no-worker``)."""
    return running(stack, worker=False, **overrides)


async def test_the_serving_process_runs_no_background_work(stack: Stack) -> None:
    async with serving_alone(stack) as (svc, _):
        assert not set(WORKER_LOOPS) & set(svc.supervisor.loops)
        assert set(svc.supervisor.loops) == {
            "invalidations", "backlog", "stream", "stream-clock", "stream-deletions", "looplag",
        }  # fmt: skip


async def test_two_workers_expire_exactly_once_and_persist_everything(
    stack: Stack, uid: str
) -> None:
    """Two worker runtimes on one deployment (and no other): every reservation falling due is
    expired once (one expire event, one unit back, counted once over both), and every change
    reaches Postgres once (the persister group shares the streams)."""
    async with (
        serving_alone(stack, sweeper_interval_seconds=0.05) as (_, client),
        open_worker(settings_for(stack, sweeper_interval_seconds=0.05)) as one,
        open_worker(settings_for(stack, sweeper_interval_seconds=0.05)) as two,
    ):
        locs = [f"{uid}-{i}" for i in range(8)]
        for loc in locs:
            await stock_up(client, loc, s=100)

        async def hold(loc: str) -> str:
            body = {"location": loc, "lines": [{"sku": "s", "qty": 1}], "ttl_seconds": 1}
            resp = await client.post("/v1/reservations", json=body)
            assert resp.status_code == 201, resp.text
            return str(resp.json()["id"])

        async def receive(loc: str, i: int) -> None:
            item = {"sku": "t", "location": loc, "delta": 1, "reason": "receipt", "ref": f"r{i}"}
            resp = await client.post("/v1/adjustments", json={"adjustments": [item]})
            assert resp.status_code == 200, resp.text

        held = await asyncio.gather(*(hold(loc) for loc in locs for _ in range(25)))
        await asyncio.gather(*(receive(loc, i) for loc in locs for i in range(25)))
        pending = set(held)
        deadline = time.monotonic() + 20
        while pending:
            for rid in list(pending):
                if await status_of(client, rid) == "expired":
                    pending.discard(rid)
            assert time.monotonic() < deadline, f"{len(pending)} not expired"
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # more sweeps by both: nothing expires twice
        expired_events: Counter[str] = Counter()
        for p in {partition_of(loc, PARTITIONS) for loc in locs}:
            for _, fields in await stack.redis.xrange(keys.stream(p)):
                event = event_fields(fields)
                if event["t"] == "p" and event["kind"] == "expire" and event["rid"] in held:
                    expired_events[event["rid"]] += 1
        assert expired_events == Counter(dict.fromkeys(held, 1))
        counted = sum(sum(w.svc.metrics.expired.values.values()) for w in (one, two))
        assert counted == len(held)
        for loc in locs:
            position = (await client.get(f"/v1/stock/{loc}/s")).json()
            assert (position["on_hand"], position["reserved"]) == (100, 0)

        deadline = time.monotonic() + 20
        while await backlog(stack.redis, PARTITIONS):
            assert time.monotonic() < deadline, "the backlog did not drain"
            await asyncio.sleep(0.05)
        rows = await stack.db.fetch(
            "SELECT location, ref, count(*) AS n FROM ledger"
            " WHERE location = ANY($1) AND sku = 't' GROUP BY location, ref",
            locs,
        )
        assert len(rows) == len(locs) * 25 and all(r["n"] == 1 for r in rows)
        statuses = await stack.db.fetch(
            "SELECT status, count(*) AS n FROM reservations WHERE id = ANY($1) GROUP BY status",
            held,
        )
        assert [(r["status"], r["n"]) for r in statuses] == [("expired", len(held))]
        for loc in locs:
            assert (
                await stack.db.fetchval(
                    "SELECT (on_hand, reserved)::text FROM positions WHERE location = $1 AND sku = 's'",
                    loc,
                )
                == "(100,0)"
            )
        assert await Reconciler(stack.redis, stack.db, PARTITIONS).run() == []
        assert one.svc.persister.persisted + two.svc.persister.persisted > 0
        for w in (one, two):
            assert all(w.svc.supervisor.loops[name].restarts == 0 for name in WORKER_LOOPS)


async def ready_status(client: httpx.AsyncClient) -> tuple[int, dict[str, Any]]:
    resp = await client.get("/readyz")
    return resp.status_code, dict(resp.json())


async def wait_ready(client: httpx.AsyncClient, want: int, seconds: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while True:
        status, body = await ready_status(client)
        if status == want:
            return body
        assert time.monotonic() < deadline, (want, body)
        await asyncio.sleep(0.05)


async def test_readyz_names_the_worker_until_one_reports_and_its_failing_loops(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    stale = {"worker_stale_seconds": 1.0, "worker_report_seconds": 0.1}
    async with serving_alone(stack, **stale) as (_, client):
        status, body = await ready_status(client)
        assert status == 503, body
        assert "worker" in body["detail"] and body["detail"].startswith("worker down")
        assert body["failing_loops"] == []
        assert "omnistock_workers_alive 0" in (await client.get("/metrics")).text

        settings = settings_for(stack, background_healthy_seconds=1.0, **stale)
        async with open_worker(settings) as worker:
            body = await wait_ready(client, 200)
            assert body["status"] == "ready"
            metrics = (await client.get("/metrics")).text
            assert "omnistock_workers_alive 1" in metrics
            assert 'omnistock_worker_background_restarts_total{loop="sweeper"} 0.0' in metrics

            async def broken(limit_per_partition: int = 200) -> list[str]:
                raise RuntimeError("sweeper fault for the test")

            real = worker.svc.store.due_reservations
            monkeypatch.setattr(worker.svc.store, "due_reservations", broken)
            body = await wait_ready(client, 503)
            assert body["failing_loops"] == ["sweeper"]
            assert "sweeper loop" in body["detail"] and "RuntimeError" in body["detail"]
            assert worker.id in body["detail"]
            deadline = time.monotonic() + 10
            while worker_restarts((await client.get("/metrics")).text, "sweeper") < 1:
                assert time.monotonic() < deadline, "worker restarts not in /metrics"
                await asyncio.sleep(0.05)
            assert "omnistock_worker_loops_failing 1" in (await client.get("/metrics")).text
            monkeypatch.setattr(worker.svc.store, "due_reservations", real)
            await wait_ready(client, 200, seconds=15)

            # A worker that stops reporting (killed) is not live past worker_stale_seconds.
            await worker.reporter.stop()
            started = time.monotonic()
            body = await wait_ready(client, 503, seconds=5)
            assert time.monotonic() - started >= 0.5
            assert "no live worker" in body["detail"]
        async with open_worker(settings):
            await wait_ready(client, 200)
        # A worker that stops withdraws its report at once.
        status, body = await ready_status(client)
        assert status == 503 and "no live worker" in body["detail"], body


def worker_restarts(metrics_text: str, loop: str) -> float:
    prefix = f'omnistock_worker_background_restarts_total{{loop="{loop}"}} '
    found = [line for line in metrics_text.splitlines() if line.startswith(prefix)]
    return float(found[0].removeprefix(prefix)) if found else 0.0


async def test_ack_postgres_gate_without_a_persister_in_the_serving_process(
    stack: Stack, uid: str
) -> None:
    """With OMNISTOCK_ACK=postgres the serving process still persists each write inline, and,
    its persister running in the worker, still refuses writes (before Redis) while Postgres does
    not answer, and takes them again when it does."""
    async with (
        serving_alone(stack, ack="postgres") as (_, client),
        open_worker(settings_for(stack, ack="postgres")),
    ):
        await stock_up(client, uid, s=5)
        assert (
            await stack.db.fetchval(
                "SELECT on_hand FROM positions WHERE location = $1 AND sku = 's'", uid
            )
            == 5
        )  # in Postgres at the ack
        item = {"sku": "s", "location": uid, "delta": 1, "reason": "receipt"}
        stack.servers.postgres.stop()
        try:
            deadline = time.monotonic() + 15
            while True:
                resp = await client.post("/v1/adjustments", json={"adjustments": [item]})
                if "acknowledgements wait for Postgres" in resp.text:
                    break
                assert time.monotonic() < deadline, resp.text
                await asyncio.sleep(0.1)
            assert resp.status_code == 503
            before = (await client.get(f"/v1/stock/{uid}/s")).json()["on_hand"]
            for _ in range(5):
                resp = await client.post("/v1/adjustments", json={"adjustments": [item]})
                assert resp.status_code == 503 and "wait for Postgres" in resp.text, resp.text
            assert (await client.get(f"/v1/stock/{uid}/s")).json()["on_hand"] == before
        finally:
            stack.servers.postgres.start()
        deadline = time.monotonic() + 30
        while (
            await client.post("/v1/adjustments", json={"adjustments": [item]})
        ).status_code != 200:
            assert time.monotonic() < deadline, "writes did not resume"
            await asyncio.sleep(0.2)
        on_hand = (await client.get(f"/v1/stock/{uid}/s")).json()["on_hand"]
        assert (
            await stack.db.fetchval(
                "SELECT on_hand FROM positions WHERE location = $1 AND sku = 's'", uid
            )
            == on_hand
        )
