"""API keys: create (secret shown once), list without secrets, delete; a deleted key stops working
at once on every instance; the bootstrap OMNISTOCK_ADMIN_KEY."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from tests.conftest import Servers
from tests.e2e.conftest import ADMIN_KEY, AppServer, app_settings, assert_problem, put_location


def client(app: AppServer, secret: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=app.url, headers={"Authorization": f"Bearer {secret}"}, timeout=30
    )


async def test_create_list_delete(admin: httpx.AsyncClient, app: AppServer, uid: str) -> None:
    await put_location(admin, uid)
    resp = await admin.post(
        "/v1/keys", json={"name": f"till {uid}", "role": "store", "locations": [uid, uid]}
    )
    assert resp.status_code == 201
    made = resp.json()
    assert made.keys() == {"id", "name", "role", "locations", "key", "created_at"}
    assert (made["name"], made["role"], made["locations"]) == (f"till {uid}", "store", [uid])
    assert made["key"].startswith("osk_") and len(made["key"]) >= 40

    listed = (await admin.get("/v1/keys")).json()["items"]
    mine = [k for k in listed if k["id"] == made["id"]]
    assert mine == [{k: v for k, v in made.items() if k != "key"}]
    assert all(made["key"] not in str(k) for k in listed)
    assert all("key" not in k and "key_hash" not in k for k in listed)

    async with client(app, made["key"]) as till:
        assert (await till.get(f"/v1/stock/{uid}/s")).status_code == 200
        resp = await admin.delete(f"/v1/keys/{made['id']}")
        assert (resp.status_code, resp.content) == (204, b"")
        refused = await till.get(f"/v1/stock/{uid}/s")
        assert_problem(refused, 401)
    assert made["id"] not in {k["id"] for k in (await admin.get("/v1/keys")).json()["items"]}
    again = await admin.delete(f"/v1/keys/{made['id']}")
    assert_problem(again, 404)


async def test_bootstrap_admin_key(admin: httpx.AsyncClient, app: AppServer, uid: str) -> None:
    async with client(app, ADMIN_KEY) as boot:
        made = await boot.post("/v1/keys", json={"name": "via bootstrap", "role": "admin"})
        assert made.status_code == 201
        assert (
            await boot.put(f"/v1/locations/{uid}", json={"name": "B", "kind": "store"})
        ).status_code == 201
        # It lives nowhere: not listed, cannot be deleted.
        ids = {k["id"] for k in (await boot.get("/v1/keys")).json()["items"]}
        assert made.json()["id"] in ids and "bootstrap" not in ids
        assert (await boot.delete("/v1/keys/bootstrap")).status_code == 404
    # The created admin key works like the bootstrap one.
    async with client(app, made.json()["key"]) as second:
        assert (await second.get("/v1/keys")).status_code == 200


async def test_no_bootstrap_key_when_not_configured(servers: Servers, db: asyncpg.Pool) -> None:
    plain = AppServer(app_settings(servers, admin_key=None))
    await plain.start()
    try:
        async with client(plain, ADMIN_KEY) as c:
            assert (await c.get("/v1/keys")).status_code == 401
    finally:
        await plain.stop()


@pytest.fixture
async def second_app(servers: Servers) -> AsyncIterator[AppServer]:
    other = AppServer(app_settings(servers))
    await other.start()
    yield other
    await other.stop()


async def test_deleted_key_stops_working_at_once_on_every_instance(
    admin: httpx.AsyncClient, app: AppServer, second_app: AppServer, uid: str
) -> None:
    await put_location(admin, uid)
    for _ in range(5):
        made = (await admin.post("/v1/keys", json={"name": "shop", "role": "storefront"})).json()
        async with client(app, made["key"]) as on_a, client(second_app, made["key"]) as on_b:
            # Both instances know (and cache) the key.
            assert (await on_a.get(f"/v1/stock/{uid}/s")).status_code == 200
            assert (await on_b.get(f"/v1/stock/{uid}/s")).status_code == 200
            assert (await admin.delete(f"/v1/keys/{made['id']}")).status_code == 204
            # The deletion answers once every instance has dropped the key: no polling needed.
            assert (await on_b.get(f"/v1/stock/{uid}/s")).status_code == 401
            assert (await on_a.get(f"/v1/stock/{uid}/s")).status_code == 401


async def test_a_new_key_works_at_once_on_every_instance(
    admin: httpx.AsyncClient, second_app: AppServer, uid: str
) -> None:
    await put_location(admin, uid)
    async with client(second_app, "osk_not_yet_" + uid) as early:
        assert (await early.get(f"/v1/stock/{uid}/s")).status_code == 401  # remembered as unknown
    made = (await admin.post("/v1/keys", json={"name": "new", "role": "feed"})).json()
    async with client(second_app, made["key"]) as on_b:
        assert (await on_b.get(f"/v1/stock/{uid}/s")).status_code == 200
