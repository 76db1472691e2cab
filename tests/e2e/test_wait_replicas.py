"""OMNISTOCK_REDIS_WAIT_REPLICAS=1 over HTTP, on a primary with one replica of its own: every
acknowledged reservation is on the replica when its 201 arrives; with the replica stopped, writes
answer 503 not-replicated within the timeout (nothing acknowledged that the replica lacks) while
reads go on; once it is back, a retry with the same Idempotency-Key answers the reservation."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import redis.asyncio as aredis
from loadtests.replica_pair import ReplicaPair

from omnistock.domain.ids import partition_of
from omnistock.redis import keys
from omnistock.redis.replicated import WaitMultiplexer
from tests.conftest import Servers, private_dir
from tests.e2e.conftest import (
    ADMIN_KEY,
    AppServer,
    app_settings,
    assert_problem,
    put_location,
    stock,
)
from tests.e2e.helpers import PARTITIONS, position

TIMEOUT_MS = 300
MARGIN_S = 3.0  # a fair deadline on a loaded 2-core box, beyond the WAIT timeout


@pytest.fixture(scope="module")
def pair() -> Iterator[ReplicaPair]:
    with private_dir("omnistock-wait-") as base, ReplicaPair(Path(base)).running() as servers:
        yield servers


@pytest.fixture(scope="module")
async def waiting_app(
    pair: ReplicaPair, servers: Servers, db: asyncpg.Pool
) -> AsyncIterator[AppServer]:
    settings = app_settings(
        servers, redis_url=pair.url, redis_wait_replicas=1, redis_wait_timeout_ms=TIMEOUT_MS
    )
    server = AppServer(settings)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(scope="module")
async def admin_w(waiting_app: AppServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=waiting_app.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30
    ) as client:
        yield client


@pytest.fixture(scope="module")
async def replica(pair: ReplicaPair) -> AsyncIterator[aredis.Redis]:
    client = aredis.Redis.from_url(pair.replica_url)
    yield client
    await client.aclose()


def writes_of(app: AppServer) -> WaitMultiplexer:
    writes = app.server.config.app.state.services.store.hot.writes  # type: ignore[attr-defined]
    assert isinstance(writes, WaitMultiplexer)
    return writes


async def test_every_acknowledged_reservation_is_on_the_replica_at_its_ack(
    waiting_app: AppServer, admin_w: httpx.AsyncClient, replica: aredis.Redis, uid: str
) -> None:
    stock_units, clients = 120, 40
    await put_location(admin_w, uid)
    await stock(admin_w, uid, hot=stock_units)
    p = partition_of(uid, PARTITIONS)
    acked: list[str] = []
    missing: list[str] = []  # acknowledged but not on the replica when the 201 arrived
    refused: list[int] = []

    async def client() -> None:
        while True:
            resp = await admin_w.post(
                "/v1/reservations", json={"location": uid, "lines": [{"sku": "hot", "qty": 1}]}
            )
            if resp.status_code == 409:  # sold out
                return
            if resp.status_code != 201:
                refused.append(resp.status_code)
                return
            rid = resp.json()["id"]
            # Read the replica at once: the ack promises it is there already.
            if not await replica.exists(keys.reservation(p, rid)):
                missing.append(rid)
            acked.append(rid)

    before = writes_of(waiting_app).stats.writes
    await asyncio.gather(*(client() for _ in range(clients)))
    assert refused == []
    assert missing == []
    assert len(acked) == len(set(acked)) == stock_units  # no oversell, none lost
    pos = await position(admin_w, uid, "hot")
    assert (pos["reserved"], pos["available"]) == (stock_units, 0)
    assert writes_of(waiting_app).stats.writes - before >= stock_units
    metrics = (await admin_w.get("/metrics")).text
    assert "omnistock_redis_wait_confirmed " in metrics
    assert "omnistock_redis_wait_last_replicas 1\n" in metrics


async def test_a_stopped_replica_turns_writes_into_503_within_the_timeout_and_reads_go_on(
    waiting_app: AppServer,
    admin_w: httpx.AsyncClient,
    pair: ReplicaPair,
    replica: aredis.Redis,
    uid: str,
) -> None:
    await put_location(admin_w, uid)
    await stock(admin_w, uid, s=10)
    p = partition_of(uid, PARTITIONS)
    stats = writes_of(waiting_app).stats
    unconfirmed = stats.unconfirmed
    body = {"location": uid, "lines": [{"sku": "s", "qty": 1}]}
    headers = {"Idempotency-Key": f"{uid}-paused"}
    pair.pause_replica()
    try:
        started = time.monotonic()
        answers = await asyncio.gather(
            *(admin_w.post("/v1/reservations", json=body, headers=headers) for _ in range(3)),
            *(admin_w.post("/v1/reservations", json=body) for _ in range(5)),
        )
        took = time.monotonic() - started
        for answer in answers:
            problem = assert_problem(answer, 503)
            assert problem["type"] == "urn:omnistock:problem:not-replicated", problem
            assert problem["replicas_required"] == 1
            assert problem["replicas_confirmed"] == 0
        assert took < TIMEOUT_MS / 1000 + MARGIN_S
        # Reads do not wait for the replica: many, each quick.
        read_started = time.monotonic()
        for _ in range(20):
            assert (await admin_w.get(f"/v1/stock/{uid}/s")).status_code == 200
        assert time.monotonic() - read_started < MARGIN_S
        assert stats.unconfirmed - unconfirmed == len(answers)
        metrics = (await admin_w.get("/metrics")).text
        assert f"omnistock_redis_wait_unconfirmed {stats.unconfirmed}\n" in metrics
        assert "omnistock_redis_wait_last_replicas 0\n" in metrics
    finally:
        pair.resume_replica()
    # Applied on the primary, unconfirmed, answered 503: a retry with the same key answers the
    # reservation the first attempt made (one, not a second) once the replica has it.
    retried = await admin_w.post("/v1/reservations", json=body, headers=headers)
    assert retried.status_code == 201, retried.text
    rid = retried.json()["id"]
    assert await replica.exists(keys.reservation(p, rid))
    # One reservation for the keyed attempts (3 sends + the retry) and one per unkeyed one.
    assert (await position(admin_w, uid, "s"))["reserved"] == 1 + 5


async def test_a_killed_replica_refuses_writes_until_one_is_back(
    waiting_app: AppServer, admin_w: httpx.AsyncClient, pair: ReplicaPair, uid: str
) -> None:
    await put_location(admin_w, uid)
    body = {"adjustments": [{"location": uid, "sku": "k", "delta": 1, "reason": "receipt"}]}
    pair.stop_replica()
    try:
        resp = await admin_w.post("/v1/adjustments", json=body)
        problem = assert_problem(resp, 503)
        assert problem["type"] == "urn:omnistock:problem:not-replicated"
        assert (await admin_w.get(f"/v1/stock/{uid}/k")).status_code == 200
    finally:
        pair.start_replica()
    resp = await admin_w.post("/v1/adjustments", json=body)
    assert resp.status_code == 200, resp.text
    # The refused adjustment was applied on the primary (and reached the replica on resync):
    # 503 says "not confirmed", not "not done"; the unkeyed retry added one more.
    assert (await position(admin_w, uid, "k"))["on_hand"] == 2
