"""No oversell through HTTP: many concurrent clients on their own connections race for the last
units; exact outcomes."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.e2e.conftest import AppServer, KeyMaker, put_location, stock
from tests.e2e.helpers import is_problem, position


@pytest.fixture
async def shoppers(app: AppServer, client_for: KeyMaker) -> AsyncIterator[list[httpx.AsyncClient]]:
    """Ten clients, each with its own key and its own pool of connections."""
    keys = []
    for _ in range(10):
        made = await client_for("storefront")
        keys.append(made.headers["Authorization"])
    clients = [
        httpx.AsyncClient(
            base_url=app.url,
            headers={"Authorization": auth},
            timeout=60,
            limits=httpx.Limits(max_connections=20),
        )
        for auth in keys
    ]
    yield clients
    for client in clients:
        await client.aclose()


async def test_500_buyers_100_units(
    admin: httpx.AsyncClient, shoppers: list[httpx.AsyncClient], uid: str
) -> None:
    await put_location(admin, uid)
    await stock(admin, uid, hot=100)
    body = {"location": uid, "lines": [{"sku": "hot", "qty": 1}], "channel": "web"}
    turns = itertools.cycle(shoppers)
    results = await asyncio.gather(
        *(next(turns).post("/v1/reservations", json=body) for _ in range(500))
    )
    assert Counter(r.status_code for r in results) == {201: 100, 409: 400}
    assert len({r.json()["id"] for r in results if r.status_code == 201}) == 100
    for lost in (r for r in results if r.status_code == 409):
        assert is_problem(lost)
        assert lost.json()["shortages"] == [{"sku": "hot", "requested": 1, "available": 0}]
    pos = await position(admin, uid, "hot")
    assert (pos["on_hand"], pos["reserved"], pos["available"], pos["status"]) == (
        100,
        100,
        0,
        "out_of_stock",
    )
    assert pos["version"] == 101


async def test_multi_line_carts_all_or_nothing_under_contention(
    admin: httpx.AsyncClient, shoppers: list[httpx.AsyncClient], uid: str
) -> None:
    # x: 3 units, y: 3 units. Carts want (2x, 1y) or (1x, 2y), 40 of each, all at once. Every
    # winner holds all its lines, no loser holds anything, and nothing is held twice.
    await put_location(admin, uid)
    await stock(admin, uid, x=3, y=3)
    carts = [((2, 1) if i % 2 else (1, 2)) for i in range(80)]
    turns = itertools.cycle(shoppers)

    async def buy(cart: tuple[int, int]) -> httpx.Response:
        lines = [{"sku": "x", "qty": cart[0]}, {"sku": "y", "qty": cart[1]}]
        return await next(turns).post("/v1/reservations", json={"location": uid, "lines": lines})

    results = await asyncio.gather(*(buy(cart) for cart in carts))
    won = [r.json() for r in results if r.status_code == 201]
    assert {r.status_code for r in results} == {201, 409}
    assert 1 <= len(won) <= 2
    held = Counter[str]()
    for doc in won:
        assert all(line["reserved"] == line["qty"] for line in doc["lines"])
        held.update({line["sku"]: line["qty"] for line in doc["lines"]})
    assert held["x"] <= 3 and held["y"] <= 3
    x, y = await position(admin, uid, "x"), await position(admin, uid, "y")
    assert (x["reserved"], y["reserved"]) == (held["x"], held["y"])
    assert (x["on_hand"], y["on_hand"]) == (3, 3)


async def test_partial_reservations_never_hold_more_than_there_is(
    admin: httpx.AsyncClient, shoppers: list[httpx.AsyncClient], uid: str
) -> None:
    await put_location(admin, uid)
    await stock(admin, uid, p=50)
    body = {"location": uid, "lines": [{"sku": "p", "qty": 3}], "allow_partial": True}
    turns = itertools.cycle(shoppers)
    results = await asyncio.gather(
        *(next(turns).post("/v1/reservations", json=body) for _ in range(40))
    )
    got = [r.json()["lines"][0]["reserved"] for r in results if r.status_code == 201]
    assert sum(got) == 50
    assert sorted(got) == [2] + [3] * 16
    assert Counter(r.status_code for r in results) == {201: 17, 409: 23}
    assert (await position(admin, uid, "p"))["reserved"] == 50
