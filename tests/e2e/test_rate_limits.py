"""Rate limits per API key across instances (API.md "Conventions (additions)"), on real servers:
IETF RateLimit headers on every /v1 response, 429 + Retry-After past the limit, one bucket per key
for all instances, the WebSocket upgrade counted once, fail-open when Redis does not answer, and
Retry-After on every kind of 503."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aredis
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from omnistock.embedded import free_port
from omnistock.redis.multiplex import Multiplexer
from omnistock.services import Services
from tests.conftest import Servers
from tests.e2e.conftest import (
    ADMIN_KEY,
    AppServer,
    KeyMaker,
    app_settings,
    assert_problem,
    put_location,
)

# The admin limit stays out of reach (the shared ``admin`` client uses the bootstrap key on
# these apps' Redis too); the other roles get limits the tests reach.
LIMITS = "admin=1000000000/1s,storefront=40/2s,feed=3/3600s,integration=5/3600s,store=1000/1s"
POLICY = re.compile(r'^"(\w+)";q=(\d+);w=(\d+)$')
STATE = re.compile(r'^"(\w+)";r=(\d+);t=(\d+)$')


def services_of(app: AppServer) -> Services:
    return app.server.config.app.state.services  # type: ignore[attr-defined, no-any-return]


@pytest.fixture(scope="module")
async def pair(servers: Servers, app: AppServer) -> AsyncIterator[tuple[AppServer, AppServer]]:
    """Two instances with low limits over the same Valkey and Postgres."""
    started = [AppServer(app_settings(servers, rate_limits=LIMITS)) for _ in range(2)]
    for server in started:
        await server.start()
    yield started[0], started[1]
    for server in started:
        await server.stop()


async def key_of(client_for: KeyMaker, role: str) -> str:
    client = await client_for(role)
    return str(client.headers["authorization"]).split()[1]


def client(app: AppServer, key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=app.url, headers={"Authorization": f"Bearer {key}"}, timeout=30
    )


def limit_headers(resp: httpx.Response) -> tuple[tuple[str, int, int], tuple[str, int, int]]:
    """(role, q, w) of RateLimit-Policy and (role, r, t) of RateLimit."""
    policy = POLICY.match(resp.headers["ratelimit-policy"])
    state = STATE.match(resp.headers["ratelimit"])
    assert policy and state, resp.headers
    return (
        (policy[1], int(policy[2]), int(policy[3])),
        (state[1], int(state[2]), int(state[3])),
    )


async def test_every_v1_response_carries_the_headers(
    pair: tuple[AppServer, AppServer], admin: httpx.AsyncClient, client_for: KeyMaker, uid: str
) -> None:
    await put_location(admin, uid)
    key = await key_of(client_for, "storefront")
    item = {"sku": "s", "location": uid, "delta": 1, "reason": "receipt"}
    async with client(pair[0], key) as http:
        start = time.monotonic()
        answers = [
            await http.get(f"/v1/availability/s?location={uid}"),  # 200
            await http.get(f"/v1/locations/{uid}"),  # 200
            await http.get("/v1/locations/nowhere-" + uid),  # 404
            await http.post("/v1/adjustments", json={"adjustments": [item]}),  # 403 (storefront)
            await http.post("/v1/reservations", json={"location": uid}),  # 422
            await http.get(f"/v1/reservations/{uid}"),  # 404
        ]
        refilled = int(20 * (time.monotonic() - start)) + 1  # the bucket refills by 20/s
        assert [r.status_code for r in answers] == [200, 200, 404, 403, 422, 404]
        for n, resp in enumerate(answers, start=1):
            policy, state = limit_headers(resp)
            assert policy == ("storefront", 40, 2)
            assert state[0] == "storefront" and 1 <= state[2] <= 2
            # Each request took one from the bucket.
            assert 40 - n <= state[1] <= min(39, 40 - n + refilled), (n, state)
        # Paths outside /v1 are not limited and carry no headers.
        health = await http.get("/healthz")
        assert "ratelimit" not in health.headers and "ratelimit-policy" not in health.headers


async def test_past_the_limit_is_429_with_retry_after(
    pair: tuple[AppServer, AppServer], client_for: KeyMaker
) -> None:
    key = await key_of(client_for, "feed")  # 3 per hour
    async with client(pair[0], key) as http:
        before = services_of(pair[0]).metrics.rate_limited.values.get((("role", "feed"),), 0)
        passed = [await http.get("/v1/locations") for _ in range(3)]
        assert [r.status_code for r in passed] == [200, 200, 200]
        assert [limit_headers(r)[1][1] for r in passed] == [2, 1, 0]
        refused = await http.get("/v1/locations")
        body = assert_problem(refused, 429)
        assert body["type"] == "urn:omnistock:problem:too-many-requests"
        retry = int(refused.headers["retry-after"])
        assert 1190 <= retry <= 1200  # one request per 1200 s comes back
        assert body["retry_after_seconds"] == retry
        assert limit_headers(refused) == (("feed", 3, 3600), ("feed", 0, 3600))
        # Refusals count nothing: still refused, and the other instance refuses too.
        assert (await http.get("/v1/locations")).status_code == 429
    async with client(pair[1], key) as other:
        assert_problem(await other.get("/v1/locations"), 429)
    metrics = (await httpx.AsyncClient(base_url=pair[0].url).get("/metrics")).text
    assert 'omnistock_rate_limited_total{role="feed"}' in metrics
    after = services_of(pair[0]).metrics.rate_limited.values[(("role", "feed"),)]
    assert after - before == 2


async def test_two_instances_hammered_with_one_key_stay_within_the_limit(
    pair: tuple[AppServer, AppServer], client_for: KeyMaker
) -> None:
    # 40 at once, then 20/s: over D seconds at most 40 + 20 * D requests pass, whichever
    # instance they reach. 16 clients alternate between the two instances for 3 s.
    key = await key_of(client_for, "storefront")
    counts: dict[int, int] = {}
    clients = [client(pair[n % 2], key) for n in range(16)]

    async def hammer(http: httpx.AsyncClient, until: float) -> None:
        while time.monotonic() < until:
            resp = await http.get("/v1/locations")
            counts[resp.status_code] = counts.get(resp.status_code, 0) + 1

    start = time.monotonic()
    try:
        await asyncio.gather(*(hammer(http, start + 3.0) for http in clients))
    finally:
        for http in clients:
            await http.aclose()
    elapsed = time.monotonic() - start
    assert set(counts) == {200, 429}, counts
    allowed = 40 + 20 * elapsed
    assert counts[200] <= allowed * 1.1, (counts, elapsed)
    # ... and not much stricter either: the burst and the rate over the time requests arrived
    # (which starts a little after ``start`` and ends a little before the last answer).
    assert counts[200] >= (40 + 20 * 3.0) * 0.9, (counts, elapsed)


async def test_the_websocket_upgrade_counts_as_one_request(
    pair: tuple[AppServer, AppServer], client_for: KeyMaker
) -> None:
    key = await key_of(client_for, "integration")  # 5 per hour
    url = pair[0].url.replace("http://", "ws://") + "/v1/stream"
    headers = {"Authorization": f"Bearer {key}"}
    async with client(pair[1], key) as http:
        assert (await http.get("/v1/locations")).status_code == 200  # 1
        async with connect(url, additional_headers=headers) as ws:  # 2
            assert ws.response is not None
            assert ws.response.headers["RateLimit"] == '"integration";r=3;t=1440'  # 2 x 720 s
            for n in range(5):  # messages on the socket are not requests
                await ws.send(f'{{"op":"subscribe","id":"s{n}","skus":["x"]}}')
                await ws.recv()
        assert limit_headers(await http.get("/v1/locations"))[1][1] == 2  # 3
        async with connect(url + f"?api_key={key}"):  # 4
            pass
        assert (await http.get("/v1/locations")).status_code == 200  # 5
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url, additional_headers=headers):
                pass
        assert refused.value.response.status_code == 429
        assert int(refused.value.response.headers["Retry-After"]) >= 1
        assert refused.value.response.headers["RateLimit"].startswith('"integration";r=0;')


async def test_the_bootstrap_admin_key_is_limited_as_admin(servers: Servers) -> None:
    # A Valkey database of its own: the bootstrap key's bucket is shared by every app on one.
    own_db = servers.redis_url.rsplit("/", 1)[0] + "/5"
    strict = AppServer(app_settings(servers, redis_url=own_db, rate_limits="admin=3/3600s"))
    await strict.start()
    try:
        async with client(strict, ADMIN_KEY) as http:
            answers = [await http.get("/v1/keys") for _ in range(4)]
            assert [r.status_code for r in answers] == [200, 200, 200, 429]
            assert limit_headers(answers[0])[0] == ("admin", 3, 3600)
            assert 1190 <= int(answers[3].headers["retry-after"]) <= 1200
    finally:
        await strict.stop()


async def test_redis_not_answering_the_limiter_lets_requests_through(
    pair: tuple[AppServer, AppServer], client_for: KeyMaker
) -> None:
    svc = services_of(pair[0])
    key = await key_of(client_for, "feed")
    limiter_client = svc.rate_limiter.client
    dead = Multiplexer(f"redis://127.0.0.1:{free_port()}/0", connect_timeout=1.0)
    svc.rate_limiter.client = dead
    try:
        async with client(pair[0], key) as http:
            answers = [await http.get("/v1/locations") for _ in range(5)]  # more than 3/hour
        assert [r.status_code for r in answers] == [200] * 5
        assert all(limit_headers(r)[1] == ("feed", 3, 0) for r in answers)
        assert svc.metrics.rate_limit_unchecked.values[(("role", "feed"),)] >= 5
    finally:
        svc.rate_limiter.client = limiter_client
        await dead.aclose()


# -- Retry-After on every 503 -----------------------------------------------------------------------


def assert_503_with_retry_after(resp: httpx.Response, slug: str) -> None:
    body = assert_problem(resp, 503)
    assert body["type"] == f"urn:omnistock:problem:{slug}", body
    assert int(resp.headers["retry-after"]) >= 1, resp.headers


async def test_back_pressure_503_has_retry_after(
    pair: tuple[AppServer, AppServer], uid: str
) -> None:
    svc = services_of(pair[0])
    async with client(pair[0], ADMIN_KEY) as http:
        await put_location(http, uid)
    limit = svc.gate.limit
    svc.gate.limit = -1  # any backlog is too much: writes pause
    try:
        async with client(pair[0], ADMIN_KEY) as http:
            item = {"sku": "s", "location": uid, "delta": 1, "reason": "receipt"}
            resp = await http.post("/v1/adjustments", json={"adjustments": [item]})
        assert_503_with_retry_after(resp, "unavailable")
    finally:
        svc.gate.limit = limit


async def test_redis_down_503_has_retry_after(pair: tuple[AppServer, AppServer], uid: str) -> None:
    svc = services_of(pair[0])
    async with client(pair[0], ADMIN_KEY) as http:
        await put_location(http, uid)
    hot = svc.store.hot
    dead = Multiplexer(f"redis://127.0.0.1:{free_port()}/0", connect_timeout=1.0)
    svc.store.hot = dead
    try:
        async with client(pair[0], ADMIN_KEY) as http:
            resp = await http.get(f"/v1/availability/s?location={uid}")
        # Connection refused: an OSError (the "unavailable" problem) or redis-py's error.
        assert resp.status_code == 503, resp.text
        assert int(resp.headers["retry-after"]) >= 1
        assert resp.json()["type"] in (
            "urn:omnistock:problem:redis-unavailable",
            "urn:omnistock:problem:unavailable",
        )
    finally:
        svc.store.hot = hot
        await dead.aclose()


async def test_postgres_down_503_has_retry_after(
    pair: tuple[AppServer, AppServer], servers: Servers
) -> None:
    keys = services_of(pair[0]).usecases.keys
    db = keys._db
    closed = await asyncpg.create_pool(servers.database_url, min_size=1, max_size=1)
    assert closed is not None
    await closed.close()
    keys._db = closed  # the keys use case's pool, closed
    try:
        async with client(pair[0], ADMIN_KEY) as http:
            resp = await http.get("/v1/keys")
        assert_503_with_retry_after(resp, "postgres-unavailable")
    finally:
        keys._db = db


async def test_readyz_503_has_retry_after(pair: tuple[AppServer, AppServer]) -> None:
    operations = services_of(pair[0]).usecases.operations
    redis = operations._redis
    dead: Any = aredis.Redis(port=free_port(), socket_connect_timeout=1)
    operations._redis = dead  # the readiness probe's Redis, unreachable
    try:
        async with httpx.AsyncClient(base_url=pair[0].url) as http:
            resp = await http.get("/readyz")
        assert_503_with_retry_after(resp, "not-ready")
    finally:
        operations._redis = redis
        await dead.aclose()
