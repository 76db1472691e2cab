"""Durability of a running service: acks that wait for Postgres, back-pressure while Postgres is
down, Redis lost under a running service, and the app killed with SIGKILL under write load."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import msgspec
import psutil
import pytest

from omnistock.embedded import EmbeddedValkey, free_port
from omnistock.redis.streams import backlog
from omnistock.sync.reconcile import Reconciler
from tests.e2e.conftest import ADMIN_KEY, AppServer, app_settings
from tests.integration.conftest import PARTITIONS, Stack

AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}


@contextlib.asynccontextmanager
async def serving(stack: Stack, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    settings = app_settings(
        stack.servers, partitions=PARTITIONS, redis_url=stack.servers.redis_url, **overrides
    )
    server = AppServer(settings)
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url, headers=AUTH, timeout=30) as client:
            yield client
    finally:
        await server.stop()


async def adjust(
    client: httpx.AsyncClient, loc: str, sku: str, delta: int, ref: str
) -> httpx.Response:
    item = {"sku": sku, "location": loc, "delta": delta, "reason": "receipt", "ref": ref}
    return await client.post("/v1/adjustments", json={"adjustments": [item]})


async def wait_persisted(stack: Stack, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while await backlog(stack.redis, PARTITIONS):
        assert time.monotonic() < deadline, "the backlog did not drain"
        await asyncio.sleep(0.05)


async def test_ack_postgres_means_in_postgres_at_the_ack(stack: Stack, uid: str) -> None:
    async with serving(stack, ack="postgres") as client:
        await client.put(f"/v1/locations/{uid}", json={"name": uid, "kind": "store"})
        for i in range(30):
            resp = await adjust(client, uid, "a", 1, f"{uid}-{i}")
            assert resp.status_code == 200
            # The moment the ack arrives, the change is in the ledger and the position current.
            row = await stack.db.fetchrow("SELECT version FROM ledger WHERE ref = $1", f"{uid}-{i}")
            assert row is not None and row["version"] == i + 1
            assert (
                await stack.db.fetchval(
                    "SELECT on_hand FROM positions WHERE location=$1 AND sku='a'", uid
                )
                == i + 1
            )
        held = await client.post(
            "/v1/reservations", json={"location": uid, "lines": [{"sku": "a", "qty": 2}]}
        )
        assert held.status_code == 201
        status = await stack.db.fetchval(
            "SELECT status FROM reservations WHERE id = $1", held.json()["id"]
        )
        assert status == "active"


async def test_postgres_down_then_back(stack: Stack, uid: str) -> None:
    async with serving(stack, backlog_limit=120) as client:
        await client.put(f"/v1/locations/{uid}", json={"name": uid, "kind": "store"})
        assert (await adjust(client, uid, "a", 50, "seed")).status_code == 200
        await wait_persisted(stack)
        stack.servers.postgres.stop()
        try:
            accepted, refused = 0, None
            for i in range(600):
                resp = await adjust(client, uid, "a", 1, f"{uid}-{i}")
                if resp.status_code == 503:
                    refused = resp
                    break
                assert resp.status_code == 200, resp.text
                accepted += 1
                if i % 20 == 0:
                    await asyncio.sleep(0.3)  # let the backlog monitor see the growth
            assert refused is not None, "writes were never paused"
            assert accepted >= 100
            body = refused.json()
            assert refused.headers["content-type"].startswith("application/problem+json")
            assert "Postgres" in body["detail"] and body["backlog"] > 120
            reservation = await client.post(
                "/v1/reservations", json={"location": uid, "lines": [{"sku": "a", "qty": 1}]}
            )
            assert reservation.status_code == 503
            read = await client.get(f"/v1/stock/{uid}/a")
            assert read.status_code == 200 and read.json()["on_hand"] == 50 + accepted
            ready = await client.get("/readyz")
            assert ready.status_code == 503 and "postgres" in ready.json()["detail"]
        finally:
            stack.servers.postgres.start()
        deadline = time.monotonic() + 30
        while (await adjust(client, uid, "a", 1, "after")).status_code != 200:
            assert time.monotonic() < deadline, "writes did not resume"
            await asyncio.sleep(0.2)
        await wait_persisted(stack)
        assert (await client.get("/readyz")).status_code == 200
    assert await Reconciler(stack.redis, stack.db, PARTITIONS).run() == []
    count = await stack.db.fetchval("SELECT count(*) FROM ledger WHERE location = $1", uid)
    assert count == 1 + accepted + 1


async def test_redis_lost_under_a_running_service(stack: Stack, uid: str) -> None:
    async with serving(stack) as client:
        await client.put(
            f"/v1/locations/{uid}", json={"name": uid, "kind": "store", "safety_stock": 1}
        )
        assert (await adjust(client, uid, "a", 20, "r1")).status_code == 200
        await client.put(f"/v1/stock/{uid}/b", json={"on_hand": 9, "safety_stock": 4})
        held = (
            await client.post(
                "/v1/reservations",
                json={"location": uid, "lines": [{"sku": "a", "qty": 3}], "ttl_seconds": 3600},
            )
        ).json()
        before = [
            (await client.get(path)).json()
            for path in (
                f"/v1/stock/{uid}/a",
                f"/v1/stock/{uid}/b",
                f"/v1/reservations/{held['id']}",
            )
        ]
        await wait_persisted(stack)

        valkey: EmbeddedValkey = stack.servers.valkey
        valkey.kill()
        for item in valkey.directory.iterdir():  # its files are gone too
            shutil.rmtree(item) if item.is_dir() else item.unlink()
        valkey.start()

        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.HTTPError):
                after = [
                    (await client.get(path)).json()
                    for path in (
                        f"/v1/stock/{uid}/a",
                        f"/v1/stock/{uid}/b",
                        f"/v1/reservations/{held['id']}",
                    )
                ]
                if after == before:
                    break
            assert time.monotonic() < deadline, f"not rebuilt: {after} != {before}"
            await asyncio.sleep(0.2)
        assert after[2]["status"] == "active" and after[2]["expires_at"] == held["expires_at"]
        assert (await adjust(client, uid, "a", 1, "r2")).json()["results"][0]["version"] == before[
            0
        ]["version"] + 1


def _serve(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNISTOCK_")}
    env.update(
        OMNISTOCK_DATA_DIR=str(data_dir), OMNISTOCK_ADMIN_KEY=ADMIN_KEY, OMNISTOCK_PARTITIONS="8"
    )
    return subprocess.Popen(
        [sys.executable, "-m", "omnistock", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def _ready(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(base_url=url) as client:
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get("/readyz")).status_code == 200:
                    return
            assert time.monotonic() < deadline, "serve did not become ready"
            await asyncio.sleep(0.2)


def _servers_of(data_dir: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if any(str(data_dir) in part for part in proc.info["cmdline"] or []):
                found.append(proc)
    return found


@pytest.mark.slow
async def test_app_killed_with_sigkill_under_write_load(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    app = _serve(data_dir, port)
    acked: list[str] = []
    try:
        await _ready(url)
        async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=10) as client:
            await client.put("/v1/locations/L1", json={"name": "L1", "kind": "store"})
            stop = asyncio.Event()

            async def writer(n: int) -> None:
                i = 0
                while not stop.is_set():
                    ref = f"w{n}-{i}"
                    i += 1
                    try:
                        resp = await adjust(client, "L1", f"s{n % 3}", 1, ref)
                    except httpx.HTTPError:
                        return  # the app died under this request: not acknowledged
                    if resp.status_code == 200:
                        acked.append(ref)

            writers = [asyncio.create_task(writer(n)) for n in range(8)]
            await asyncio.sleep(2.0)
            app.send_signal(signal.SIGKILL)
            app.wait()
            stop.set()
            await asyncio.gather(*writers)
    finally:
        if app.poll() is None:
            app.kill()
    assert len(acked) > 50
    deadline = time.monotonic() + 30
    while _servers_of(data_dir):  # the embedded servers follow their parent down
        assert time.monotonic() < deadline, "embedded servers outlived the killed app"
        await asyncio.sleep(0.1)

    app = _serve(data_dir, port)
    try:
        await _ready(url)
        run = msgspec.json.decode((data_dir / "run.json").read_bytes())
        conn = await asyncpg.connect(run["database_url"])
        try:
            deadline = time.monotonic() + 30
            while True:
                rows = await conn.fetch(
                    "SELECT ref, count(*) AS n FROM ledger WHERE ref = ANY($1) GROUP BY ref", acked
                )
                if len(rows) == len(acked):
                    break
                assert time.monotonic() < deadline, (
                    f"{len(acked) - len(rows)} acknowledged changes missing"
                )
                await asyncio.sleep(0.2)
            assert all(r["n"] == 1 for r in rows)
            on_hand = await conn.fetchval(
                "SELECT sum(on_hand) FROM positions WHERE location = 'L1'"
            )
            assert on_hand >= len(acked)  # unacknowledged ones may have landed too
        finally:
            await conn.close()
    finally:
        app.send_signal(signal.SIGTERM)
        assert app.wait(60) == 0
    assert _servers_of(data_dir) == []
