"""Unknown ids cost no database work (defect 9): requests naming locations that do not exist, and
requests with bearer keys that do not exist, are answered from memory. Every query an instance's
request path and caches send to Postgres is counted: a hammer of thousands of such requests costs
none, and a location or key created on another instance costs each instance one read, after
which it works there at once."""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from tests.conftest import Servers
from tests.e2e.conftest import ADMIN_KEY, AppServer, app_settings, put_location, stock

_QUERY_METHODS = ("fetch", "fetchrow", "fetchval", "execute", "executemany", "acquire")


class CountingPool:
    """Stands in for an asyncpg pool and counts every query (or connection taken) by its SQL."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool
        self.queries: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._pool, name)
        if name not in _QUERY_METHODS:
            return target

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.queries[" ".join(str(args[0]).split()) if args else name] += 1
            return target(*args, **kwargs)

        return counted

    def total(self) -> int:
        return sum(self.queries.values())

    def reading(self, table: str) -> int:
        """Queries that read ``table``."""
        return sum(n for sql, n in self.queries.items() if f"FROM {table}" in sql)


@pytest.fixture
async def counted(servers: Servers) -> AsyncIterator[tuple[AppServer, CountingPool]]:
    """An instance of its own whose request handlers and caches query through a CountingPool
    (background loops keep the pool they were given; they are not request work)."""
    server = AppServer(app_settings(servers))
    await server.start()
    svc = server.server.config.app.state.services  # type: ignore[attr-defined]
    pool = CountingPool(svc.db)
    svc.db = svc.keys._db = svc.locations._db = pool
    yield server, pool
    await server.stop()


async def hammer(
    n: int, call: Callable[[int], Awaitable[httpx.Response]], concurrency: int = 50
) -> Counter[int]:
    """``n`` calls, ``concurrency`` at a time; their status codes."""
    statuses: Counter[int] = Counter()
    for start in range(0, n, concurrency):
        batch = await asyncio.gather(*(call(i) for i in range(start, min(n, start + concurrency))))
        statuses.update(resp.status_code for resp in batch)
    return statuses


def unknown_location_requests(
    c: httpx.AsyncClient, uid: str, secrets_: list[str]
) -> Callable[[int], Any]:
    """Every kind of request naming a location that does not exist (each a 404), spread over
    ``secrets_`` (so no one key's rate limit is what answers)."""

    def call(i: int) -> Awaitable[httpx.Response]:
        loc = f"{uid}-nowhere-{i}"
        h = {"Authorization": f"Bearer {secrets_[i % len(secrets_)]}"}
        match i % 6:
            case 0:
                return c.get(f"/v1/stock/{loc}/s", headers=h)
            case 1:
                return c.get(f"/v1/locations/{loc}", headers=h)
            case 2:
                return c.get(f"/v1/stock/{loc}/s/history", headers=h)
            case 3:
                return c.get("/v1/availability/s", params={"location": loc}, headers=h)
            case 4:
                body = {"location": loc, "lines": [{"sku": "s", "qty": 1}]}
                return c.post("/v1/reservations", json=body, headers=h)
            case _:
                item = {"sku": "s", "location": loc, "delta": 1, "reason": "receipt"}
                return c.post("/v1/adjustments", json={"adjustments": [item]}, headers=h)

    return call


async def integration_keys(admin: httpx.AsyncClient, count: int) -> list[str]:
    made = [
        (await admin.post("/v1/keys", json={"name": f"k{i}", "role": "integration"})).json()
        for i in range(count)
    ]
    return [m["key"] for m in made]


async def test_unknown_locations_and_keys_cost_no_queries(
    counted: tuple[AppServer, CountingPool],
    admin: httpx.AsyncClient,
    app: AppServer,
    uid: str,
) -> None:
    server, pool = counted
    await put_location(admin, uid)
    await stock(admin, uid, s=3)
    keys = [ADMIN_KEY, *await integration_keys(admin, 7)]
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as anon:
        for key in keys:  # each works here (and the keys are read once more after the last)
            headers = {"Authorization": f"Bearer {key}"}
            assert (await anon.get(f"/v1/stock/{uid}/s", headers=headers)).status_code == 200
        pool.queries.clear()

        statuses = await hammer(1200, unknown_location_requests(anon, uid, keys))
        assert statuses == {404: 1200}
        assert pool.queries == {}

        def stranger(i: int) -> Awaitable[httpx.Response]:
            key = "osk_" + secrets.token_urlsafe(32)
            return anon.get(f"/v1/stock/{uid}/s", headers={"Authorization": f"Bearer {key}"})

        assert await hammer(1200, stranger) == {401: 1200}
        assert pool.queries == {}

        # Created on the other instance: here at once, for one read of the table each.
        new_loc = f"{uid}-new"
        await put_location(admin, new_loc)
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        assert (await anon.get(f"/v1/locations/{new_loc}", headers=headers)).status_code == 200
        made = (await admin.post("/v1/keys", json={"name": "new", "role": "integration"})).json()
        fresh = {"Authorization": f"Bearer {made['key']}"}
        assert (await anon.get(f"/v1/stock/{new_loc}/s", headers=fresh)).status_code == 200
        assert (pool.reading("locations"), pool.reading("api_keys"), pool.total()) == (1, 1, 2)

        # ... and only once: unknown ids after it cost nothing again, concurrently too.
        pool.queries.clear()
        assert await hammer(600, unknown_location_requests(anon, uid, keys)) == {404: 600}
        assert await hammer(600, stranger) == {401: 600}
        assert pool.queries == {}


async def test_many_lookups_waiting_for_one_read_of_the_keys(
    counted: tuple[AppServer, CountingPool], admin: httpx.AsyncClient, uid: str
) -> None:
    """After keys change, the instance reads them once, however many requests (known keys and
    unknown ones) arrive together."""
    server, pool = counted
    await put_location(admin, uid)
    made = (await admin.post("/v1/keys", json={"name": "k", "role": "integration"})).json()
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as anon:
        pool.queries.clear()
        known = {"Authorization": f"Bearer {made['key']}"}

        def mixed(i: int) -> Awaitable[httpx.Response]:
            key = made["key"] if i % 2 else "osk_" + secrets.token_urlsafe(32)
            return anon.get(f"/v1/stock/{uid}/s", headers={"Authorization": f"Bearer {key}"})

        assert await hammer(400, mixed, concurrency=200) == {200: 200, 401: 200}
        assert pool.reading("api_keys") == pool.total() == 1
        # A deleted key stops at once (the instance reads the keys again, once).
        assert (await admin.delete(f"/v1/keys/{made['id']}")).status_code == 204
        assert await hammer(200, mixed, concurrency=100) == {401: 200}
        assert (await anon.get(f"/v1/stock/{uid}/s", headers=known)).status_code == 401
        assert pool.reading("api_keys") == pool.total() == 2
