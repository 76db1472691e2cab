"""Expiry over HTTP: a reservation past expires_at is released (status ``expired``) within 2 s,
exactly once, also with two app instances sweeping at once; after that it cannot be acted on."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
import redis.asyncio as aredis

from omnistock.domain.clock import parse_rfc3339
from omnistock.domain.ids import partition_of
from omnistock.redis import keys
from tests.conftest import Servers
from tests.e2e.conftest import (
    ADMIN_KEY,
    AppServer,
    app_settings,
    assert_problem,
    put_location,
    stock,
)
from tests.e2e.helpers import PARTITIONS, position, reserve, spread_ids
from tests.events import event_fields


async def expire_events(app_redis: aredis.Redis, loc: str) -> list[dict[str, str]]:
    """Every event of ``loc`` in its partition stream whose kind is ``expire``."""
    entries = await app_redis.xrange(keys.stream(partition_of(loc, PARTITIONS)))
    found = []
    for _, fields in entries:
        event = event_fields(fields)
        if event.get("loc") == loc and event.get("kind") == "expire":
            found.append(event)
    return found


async def wait_expired(client: httpx.AsyncClient, rid: str, deadline: float) -> float:
    """Poll until ``rid`` is expired; returns when that was seen (time.time())."""
    while time.time() < deadline:
        doc = (await client.get(f"/v1/reservations/{rid}")).json()
        if doc["status"] == "expired":
            return time.time()
        assert doc["status"] == "active", doc
        await asyncio.sleep(0.02)
    raise AssertionError(f"{rid} not expired in time")


async def test_reservation_expires_within_2s_exactly_once(
    admin: httpx.AsyncClient, app_redis: aredis.Redis, uid: str
) -> None:
    await put_location(admin, uid)
    await stock(admin, uid, s=5, t=1)
    await reserve(admin, uid, s=2)  # stays active throughout
    body = {
        "location": uid,
        "lines": [{"sku": "s", "qty": 2}, {"sku": "t", "qty": 1}],
        "ttl_seconds": 1,
    }
    doc = (await admin.post("/v1/reservations", json=body)).json()
    assert doc["status"] == "active"
    expires = parse_rfc3339(doc["expires_at"]) / 1000
    assert expires - parse_rfc3339(doc["created_at"]) / 1000 == pytest.approx(1.0, abs=0.002)
    seen = await wait_expired(admin, doc["id"], expires + 5)
    assert seen <= expires + 2.0
    # Stock came back (the first reservation still holds its units).
    s, t = await position(admin, uid, "s"), await position(admin, uid, "t")
    assert (s["reserved"], s["available"], t["reserved"], t["available"]) == (2, 3, 0, 1)
    await asyncio.sleep(0.5)  # several more sweeps: nothing happens twice
    events = await expire_events(app_redis, uid)
    assert Counter((e["t"], e.get("sku", "")) for e in events if e.get("rid") == doc["id"]) == {
        ("p", "s"): 1,
        ("p", "t"): 1,
        ("r", ""): 1,
    }
    final = (await admin.get(f"/v1/reservations/{doc['id']}")).json()
    assert final["status"] == "expired" and final["finished_at"] is not None

    for verb, payload in (("commit", None), ("release", None), ("extend", {"ttl_seconds": 60})):
        resp = await admin.post(f"/v1/reservations/{doc['id']}/{verb}", json=payload)
        assert_problem(resp, 409)
        assert resp.json()["reservation_status"] == "expired"
    assert (await position(admin, uid, "s"))["reserved"] == 2


async def test_acting_on_an_overdue_reservation_before_the_sweep_is_409(
    uid: str, servers: Servers, db: asyncpg.Pool
) -> None:
    # With no sweep due (and a database of its own, which no other instance sweeps), commit finds
    # the reservation past its expiry: it expires it, and never sells it.
    own_db = servers.redis_url.rsplit("/", 1)[0] + "/2"
    quiet = AppServer(app_settings(servers, redis_url=own_db, sweeper_interval_seconds=60))
    await quiet.start()
    try:
        async with httpx.AsyncClient(
            base_url=quiet.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}
        ) as client:
            await put_location(client, uid)
            await stock(client, uid, s=5)
            body = {"location": uid, "lines": [{"sku": "s", "qty": 2}], "ttl_seconds": 1}
            rid = (await client.post("/v1/reservations", json=body)).json()["id"]
            await asyncio.sleep(1.05)
            resp = await client.post(f"/v1/reservations/{rid}/commit")
            assert resp.status_code == 409
            assert resp.json()["reservation_status"] == "expired"
            pos = await position(client, uid, "s")
            assert (pos["on_hand"], pos["reserved"]) == (5, 0)
    finally:
        await quiet.stop()


@pytest.fixture
async def second_app(servers: Servers) -> AsyncIterator[AppServer]:
    other = AppServer(app_settings(servers))
    await other.start()
    yield other
    await other.stop()


async def test_two_instances_expire_each_reservation_once(
    admin: httpx.AsyncClient, app_redis: aredis.Redis, second_app: AppServer, uid: str
) -> None:
    locs = spread_ids(uid, 4)
    async with httpx.AsyncClient(
        base_url=second_app.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30
    ) as other:
        for loc in locs:
            await put_location(admin, loc)
            await stock(admin, loc, s=20)
        rids: dict[str, str] = {}
        for i in range(40):
            loc = locs[i % len(locs)]
            client = admin if i % 2 else other
            body = {"location": loc, "lines": [{"sku": "s", "qty": 1}], "ttl_seconds": 1}
            resp = await client.post("/v1/reservations", json=body)
            assert resp.status_code == 201
            rids[resp.json()["id"]] = loc
        deadline = time.time() + 6
        for rid in rids:
            await wait_expired(other if hash(rid) % 2 else admin, rid, deadline)
        await asyncio.sleep(0.5)
        for loc in locs:
            assert (await position(other, loc, "s"))["reserved"] == 0
            events = await expire_events(app_redis, loc)
            per_rid = Counter(e["rid"] for e in events if e["t"] == "r")
            assert per_rid == {rid: 1 for rid, where in rids.items() if where == loc}
            assert len([e for e in events if e["t"] == "p"]) == 10
