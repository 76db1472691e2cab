"""An app served for real (uvicorn on a free port) over the session's Valkey and Postgres."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aredis
import uvicorn

from omnistock.app import create_app
from omnistock.cluster_url import is_cluster_url
from omnistock.embedded import free_port
from omnistock.redis.client import any_client
from omnistock.settings import Settings, load_settings
from omnistock.worker import WorkerRuntime
from tests.conftest import Servers

ADMIN_KEY = "osk_test_admin_" + secrets.token_hex(8)
# Limits no test reaches, so the suite measures behaviour, not throttling; the rate-limit tests
# (test_rate_limits.py) start apps with limits of their own.
SUITE_RATE_LIMITS = ",".join(
    f"{role}=1000000000/1s" for role in ("admin", "integration", "store", "storefront", "feed")
)


class AppServer:
    """One running instance; ``url`` is its base URL. With ``worker`` (the default) a worker
    runtime runs beside it, in the same event loop and on the app's own clients, store and
    supervisor, as ``serve`` runs its worker process: what the tests look at stays in one place."""

    def __init__(self, settings: Settings, *, worker: bool = True) -> None:
        self.settings = settings
        self.with_worker = worker
        self.worker: WorkerRuntime | None = None
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            create_app(settings),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="on",
            # Longer than httpx's keep-alive expiry (5 s): the test clients close idle
            # connections first, so a request never races the server closing its connection.
            timeout_keep_alive=30,
        )
        self.server = uvicorn.Server(config)
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(self.server.serve())
        while not self.server.started:
            if self.task.done():
                self.task.result()
            await asyncio.sleep(0.02)
        if self.with_worker:
            self.worker = WorkerRuntime(self.server.config.app.state.services)  # type: ignore[attr-defined]
            await self.worker.start()

    async def stop(self) -> None:
        if self.worker is not None:
            await self.worker.stop()  # its loops stop with the app's supervisor
        self.server.should_exit = True
        if self.task is not None:
            await self.task


def app_redis_url(servers: Servers) -> str:
    """Apps get their own Valkey database: their sweepers and stream readers must not act on what
    the script tests (database 0) set up, nor those tests see the apps' events. (A cluster has
    database 0 only: the cluster tier gives its apps a cluster of their own instead.)"""
    if is_cluster_url(servers.redis_url):
        return servers.redis_url
    return servers.redis_url.rsplit("/", 1)[0] + "/1"


def app_settings(servers: Servers, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "redis_url": app_redis_url(servers),
        "database_url": servers.database_url,
        "admin_key": ADMIN_KEY,
        "sweeper_interval_seconds": 0.1,
        "redis_max_connections": 100,
        "rate_limits": SUITE_RATE_LIMITS,
    }
    values.update(overrides)
    return load_settings(env={}, **values)


@pytest.fixture(scope="session")
async def app(servers: Servers, db: asyncpg.Pool) -> AsyncIterator[AppServer]:
    server = AppServer(app_settings(servers))
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(scope="session")
async def app_redis(servers: Servers) -> AsyncIterator[aredis.Redis]:
    """A client on the apps' Valkey database, to look at what they stored and streamed."""
    client = any_client(app_redis_url(servers), 16)
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
async def admin(app: AppServer) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client with the bootstrap admin key."""
    async with httpx.AsyncClient(
        base_url=app.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30
    ) as client:
        yield client


@pytest.fixture(scope="session")
async def anon(app: AppServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=app.url, timeout=30) as client:
        yield client


KeyMaker = Callable[..., Awaitable[httpx.AsyncClient]]


@pytest.fixture
async def client_for(app: AppServer, admin: httpx.AsyncClient) -> AsyncIterator[KeyMaker]:
    """``await client_for("store", locations=[...])``: a client with a fresh key of that role."""
    made: list[httpx.AsyncClient] = []

    async def make(
        role: str, locations: list[str] | None = None, name: str | None = None
    ) -> httpx.AsyncClient:
        body = {"name": name or f"test-{role}", "role": role, "locations": locations or []}
        created = await admin.post("/v1/keys", json=body)
        assert created.status_code == 201, created.text
        client = httpx.AsyncClient(
            base_url=app.url,
            headers={"Authorization": f"Bearer {created.json()['key']}"},
            timeout=30,
        )
        made.append(client)
        return client

    yield make
    for client in made:
        await client.aclose()


async def put_location(admin: httpx.AsyncClient, loc_id: str, **fields: Any) -> dict[str, Any]:
    body = {"name": f"Store {loc_id}", "kind": "store", **fields}
    resp = await admin.put(f"/v1/locations/{loc_id}", json=body)
    assert resp.status_code in (200, 201), resp.text
    return dict(resp.json())


async def stock(admin: httpx.AsyncClient, loc_id: str, **skus: int) -> None:
    """Receive ``skus`` (sku=qty) at ``loc_id``."""
    items = [
        {"sku": s, "location": loc_id, "delta": q, "reason": "receipt"} for s, q in skus.items()
    ]
    resp = await admin.post("/v1/adjustments", json={"adjustments": items})
    assert resp.status_code == 200, resp.text


def assert_problem(resp: httpx.Response, status: int, field: str | None = None) -> dict[str, Any]:
    """``resp`` is an RFC 9457 problem with ``status`` (naming ``field`` when given)."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json"), resp.headers
    body = dict(resp.json())
    assert {"type", "title", "status", "detail"} <= body.keys()
    assert body["status"] == status
    if field is not None:
        assert body["field"] == field, body
    return body


@pytest.fixture
def store(app: AppServer) -> Any:
    """The running app's StockStore (to look at Redis directly)."""
    return app.server.config.app.state.services.store  # type: ignore[attr-defined]
