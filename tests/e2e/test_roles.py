"""The role matrix: each role, and no key / an unknown key / a deleted key, against each endpoint
class, with exact statuses; every refused request is a problem+json and changes nothing."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from itertools import count
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import ADMIN_KEY, AppServer, KeyMaker, assert_problem, put_location, stock
from tests.e2e.helpers import is_problem, reserve, snapshot

ROLES = ("admin", "integration", "store", "storefront", "feed")
KEYLESS = ("no key", "unknown key", "deleted key")
EVERYONE = frozenset(ROLES)
WRITERS = frozenset({"admin", "integration", "store"})
RESERVERS = frozenset({"admin", "integration", "store", "storefront"})
OPEN_PATHS = ("/healthz", "/readyz", "/metrics", "/docs", "/schema/openapi.json")


@dataclass
class World:
    """Two stocked locations: ``own`` (the store key's) and ``other``."""

    admin: httpx.AsyncClient
    own: str
    other: str
    serial: count[int] = field(default_factory=count)
    reservations: list[str] = field(default_factory=list)

    async def state(self) -> dict[str, Any]:
        cells = [(loc, sku) for loc in (self.own, self.other) for sku in ("s", "t")]
        return await snapshot(self.admin, cells, self.reservations)


Act = Callable[[httpx.AsyncClient, World, Any], Awaitable[httpx.Response]]
Prepare = Callable[[World], Awaitable[Any]]


async def nothing(w: World) -> None:
    return None


@dataclass
class Action:
    name: str
    allowed: frozenset[str]
    status: int
    act: Act
    prepare: Prepare = nothing


async def victim_key(w: World) -> str:
    resp = await w.admin.post("/v1/keys", json={"name": "victim", "role": "feed"})
    return str(resp.json()["id"])


def held_at(where: str) -> Prepare:
    async def prepare(w: World) -> str:
        rid = str((await reserve(w.admin, getattr(w, where), s=1))["id"])
        w.reservations.append(rid)
        return rid

    return prepare


def on_reservation(verb: str, body: Any = None) -> Act:
    def act(c: httpx.AsyncClient, w: World, rid: Any) -> Awaitable[httpx.Response]:
        return c.post(f"/v1/reservations/{rid}/{verb}", json=body)

    return act


def adjustment(where: str) -> Act:
    def act(c: httpx.AsyncClient, w: World, _: Any) -> Awaitable[httpx.Response]:
        item = {"sku": "s", "location": getattr(w, where), "delta": 3, "reason": "receipt"}
        return c.post("/v1/adjustments", json={"adjustments": [item]})

    return act


def new_reservation(where: str) -> Act:
    def act(c: httpx.AsyncClient, w: World, _: Any) -> Awaitable[httpx.Response]:
        body = {
            "location": getattr(w, where),
            "lines": [{"sku": "s", "qty": 1}, {"sku": "t", "qty": 2}],
        }
        return c.post("/v1/reservations", json=body)

    return act


def new_location(c: httpx.AsyncClient, w: World, _: Any) -> Awaitable[httpx.Response]:
    return c.put(f"/v1/locations/{w.own}-new-{next(w.serial)}", json={"name": "N", "kind": "kiosk"})


def matrix(c: httpx.AsyncClient, w: World, _: Any) -> Awaitable[httpx.Response]:
    return c.post("/v1/availability", json={"skus": ["s", "t"], "locations": [w.own, w.other]})


ACTIONS = [
    Action("keys create", frozenset({"admin"}), 201,
           lambda c, w, _: c.post("/v1/keys", json={"name": "made", "role": "feed"})),
    Action("keys list", frozenset({"admin"}), 200, lambda c, w, _: c.get("/v1/keys")),
    Action("keys delete", frozenset({"admin"}), 204,
           lambda c, w, kid: c.delete(f"/v1/keys/{kid}"), victim_key),
    Action("locations put", frozenset({"admin"}), 201, new_location),
    Action("locations get", EVERYONE, 200, lambda c, w, _: c.get(f"/v1/locations/{w.other}")),
    Action("locations list", EVERYONE, 200, lambda c, w, _: c.get("/v1/locations")),
    Action("stock get own", EVERYONE, 200, lambda c, w, _: c.get(f"/v1/stock/{w.own}/s")),
    Action("stock get other", EVERYONE, 200, lambda c, w, _: c.get(f"/v1/stock/{w.other}/s")),
    Action("stock put own", WRITERS, 200,
           lambda c, w, _: c.put(f"/v1/stock/{w.own}/t", json={"on_hand": 70 + next(w.serial)})),
    Action("stock put other", WRITERS - {"store"}, 200,
           lambda c, w, _: c.put(f"/v1/stock/{w.other}/t", json={"on_hand": 70 + next(w.serial)})),
    Action("adjust own", WRITERS, 200, adjustment("own")),
    Action("adjust other", WRITERS - {"store"}, 200, adjustment("other")),
    Action("availability one", EVERYONE, 200, lambda c, w, _: c.get("/v1/availability/s")),
    Action("availability batch", EVERYONE, 200, matrix),
    Action("reserve own", RESERVERS, 201, new_reservation("own")),
    Action("reserve other", RESERVERS - {"store"}, 201, new_reservation("other")),
    Action("reservation get own", EVERYONE, 200,
           lambda c, w, rid: c.get(f"/v1/reservations/{rid}"), held_at("own")),
    Action("reservation get other", EVERYONE, 200,
           lambda c, w, rid: c.get(f"/v1/reservations/{rid}"), held_at("other")),
    Action("commit own", RESERVERS, 200, on_reservation("commit"), held_at("own")),
    Action("commit other", RESERVERS - {"store"}, 200, on_reservation("commit"), held_at("other")),
    Action("partial commit other", RESERVERS - {"store"}, 200,
           on_reservation("commit", {"lines": [{"sku": "s", "qty": 1}]}), held_at("other")),
    Action("release own", RESERVERS, 200, on_reservation("release"), held_at("own")),
    Action("release other", RESERVERS - {"store"}, 200, on_reservation("release"), held_at("other")),
    Action("extend own", RESERVERS, 200, on_reservation("extend", {"ttl_seconds": 60}), held_at("own")),
    Action("extend other", RESERVERS - {"store"}, 200,
           on_reservation("extend", {"ttl_seconds": 60}), held_at("other")),
]  # fmt: skip


@pytest.fixture
async def world(admin: httpx.AsyncClient, uid: str) -> World:
    w = World(admin, f"{uid}-own", f"{uid}-other")
    for loc in (w.own, w.other):
        await put_location(admin, loc)
        await stock(admin, loc, s=1000, t=1000)
    return w


@pytest.fixture
async def caller(
    request: pytest.FixtureRequest,
    app: AppServer,
    admin: httpx.AsyncClient,
    client_for: KeyMaker,
    world: World,
) -> AsyncIterator[httpx.AsyncClient]:
    """A client for the role (or keyless case) the test is parametrized with."""
    who: str = request.param
    if who in ROLES:
        yield await client_for(who, [world.own] if who == "store" else None)
        return
    headers = {}
    if who == "unknown key":
        headers["Authorization"] = f"Bearer osk_{secrets.token_urlsafe(32)}"
    elif who == "deleted key":
        made = (await admin.post("/v1/keys", json={"name": "gone", "role": "integration"})).json()
        assert (await admin.delete(f"/v1/keys/{made['id']}")).status_code == 204
        headers["Authorization"] = f"Bearer {made['key']}"
    async with httpx.AsyncClient(base_url=app.url, headers=headers, timeout=30) as client:
        yield client


@pytest.mark.parametrize("caller", ROLES + KEYLESS, indirect=True)
async def test_role_matrix(
    request: pytest.FixtureRequest, caller: httpx.AsyncClient, world: World
) -> None:
    who = request.node.callspec.params["caller"]
    wrong: list[str] = []
    for action in ACTIONS:
        prepared = await action.prepare(world)
        before = await world.state()
        resp = await action.act(caller, world, prepared)
        expected = 401 if who in KEYLESS else action.status if who in action.allowed else 403
        if resp.status_code != expected:
            wrong.append(
                f"{action.name}: {resp.status_code} (expected {expected}) {resp.text[:200]}"
            )
            continue
        if expected < 400:
            continue
        if not is_problem(resp):
            wrong.append(f"{action.name}: not a problem+json: {resp.text[:200]}")
        slug = "unauthorized" if expected == 401 else "forbidden"
        if resp.json().get("type") != f"urn:omnistock:problem:{slug}":
            wrong.append(f"{action.name}: type {resp.json().get('type')}")
        if expected == 401 and not resp.headers.get("www-authenticate", "").startswith("Bearer"):
            wrong.append(f"{action.name}: 401 without WWW-Authenticate: Bearer")
        after = await world.state()
        if after != before:
            wrong.append(f"{action.name}: a refused request changed state")
    assert wrong == []


@pytest.mark.parametrize("caller", ROLES + KEYLESS, indirect=True)
async def test_operations_endpoints_are_open_to_everyone(caller: httpx.AsyncClient) -> None:
    for path in OPEN_PATHS:
        resp = await caller.get(path)
        assert resp.status_code == 200, (path, resp.text[:200])
    assert "omnistock_http_requests_total" in (await caller.get("/metrics")).text
    assert (await caller.get("/schema/openapi.json")).json()["openapi"].startswith("3.")
    assert "swagger-ui" in (await caller.get("/docs")).text


async def test_authorization_header_forms(app: AppServer, world: World) -> None:
    path = f"/v1/stock/{world.own}/s"
    async with httpx.AsyncClient(base_url=app.url, timeout=30) as c:
        for value in (
            "",
            "Bearer",
            f"Basic {ADMIN_KEY}",
            ADMIN_KEY,
            f"Token {ADMIN_KEY}",
        ):
            resp = await c.get(path, headers={"Authorization": value})
            assert resp.status_code == 401, value
            assert is_problem(resp)
        for value in (f"bearer {ADMIN_KEY}", f"BEARER {ADMIN_KEY}", f"Bearer  {ADMIN_KEY}"):
            assert (await c.get(path, headers={"Authorization": value})).status_code == 200, value
        # The query parameter is for WebSockets only.
        assert (await c.get(path, params={"api_key": ADMIN_KEY})).status_code == 401


async def test_store_key_with_several_locations(
    client_for: KeyMaker, admin: httpx.AsyncClient, uid: str
) -> None:
    a, b, c = f"{uid}-a", f"{uid}-b", f"{uid}-c"
    for loc in (a, b, c):
        await put_location(admin, loc)
        await stock(admin, loc, s=5)
    store = await client_for("store", [a, b])
    items = [{"sku": "s", "location": loc, "delta": -1, "reason": "sale"} for loc in (a, b)]
    assert (await store.post("/v1/adjustments", json={"adjustments": items})).status_code == 200
    # One item at a location the key does not have refuses the whole batch.
    before = await snapshot(admin, [(loc, "s") for loc in (a, b, c)])
    items.append({"sku": "s", "location": c, "delta": -1, "reason": "sale"})
    resp = await store.post("/v1/adjustments", json={"adjustments": items})
    assert_problem(resp, 403)
    assert await snapshot(admin, [(loc, "s") for loc in (a, b, c)]) == before
