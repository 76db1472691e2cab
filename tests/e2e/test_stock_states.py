"""Stock states over HTTP: moves between sellable and unsellable, adjustments in a state, returns
at any location; exact quantities after every step and a ledger row for every movement."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.e2e.conftest import KeyMaker, assert_problem, put_location, stock
from tests.e2e.test_import_history import settled_history


def shape(pos: dict[str, Any]) -> tuple[int, int, int, int, int]:
    return pos["on_hand"], pos["reserved"], pos["unsellable"], pos["available"], pos["version"]


async def move(
    client: httpx.AsyncClient, loc: str, sku: str, qty: int, to: str, reason: str, **extra: Any
) -> httpx.Response:
    item = {"sku": sku, "location": loc, "qty": qty, "to": to, "reason": reason, **extra}
    return await client.post("/v1/moves", json={"moves": [item]})


async def test_moves_both_ways_and_409(admin: httpx.AsyncClient, uid: str) -> None:
    await put_location(admin, uid, safety_stock=1)
    await stock(admin, uid, s=10)
    resp = await move(admin, uid, "s", 4, "unsellable", "damaged", ref="box-7")
    assert resp.status_code == 200, resp.text
    (pos,) = resp.json()["results"]
    assert shape(pos) == (10, 0, 4, 5, 2)
    # Back to sellable after inspection.
    (pos,) = (await move(admin, uid, "s", 3, "sellable", "inspection_passed")).json()["results"]
    assert shape(pos) == (10, 0, 1, 8, 3)
    # More than there is in the source state: 409 with the shortage, nothing changes.
    short = assert_problem(await move(admin, uid, "s", 2, "sellable", "repaired"), 409)
    assert short["shortages"] == [
        {"sku": "s", "location": uid, "state": "unsellable", "requested": 2, "available": 1}
    ]
    short = assert_problem(await move(admin, uid, "s", 10, "unsellable", "damaged"), 409)
    assert short["shortages"][0]["state"] == "sellable"
    assert short["shortages"][0]["available"] == 9
    # Items of one call are checked together: the second would pass alone, not after the first.
    both = [
        {"sku": "s", "location": uid, "qty": 5, "to": "unsellable", "reason": "quality_control"},
        {"sku": "s", "location": uid, "qty": 5, "to": "unsellable", "reason": "quality_control"},
    ]
    short = assert_problem(await admin.post("/v1/moves", json={"moves": both}), 409)
    assert short["field"] == "moves[1]"
    pos = (await admin.get(f"/v1/stock/{uid}/s")).json()
    assert shape(pos) == (10, 0, 1, 8, 3)
    items = await settled_history(admin, uid, "s", 3)
    assert [(i["kind"], i["reason"], i["ref"], i["delta_on_hand"], i["delta_unsellable"],
             i["unsellable"]) for i in items] == [
        ("move", "inspection_passed", None, 0, -3, 1),
        ("move", "damaged", "box-7", 0, 4, 4),
        ("adjust", "receipt", None, 10, 0, 0),
    ]  # fmt: skip


async def test_unsellable_is_not_reservable(admin: httpx.AsyncClient, uid: str) -> None:
    await put_location(admin, uid)
    await stock(admin, uid, s=5)
    assert (await move(admin, uid, "s", 3, "unsellable", "damaged")).status_code == 200
    resp = await admin.post(
        "/v1/reservations", json={"location": uid, "lines": [{"sku": "s", "qty": 3}]}
    )
    assert assert_problem(resp, 409)["shortages"] == [{"sku": "s", "requested": 3, "available": 2}]
    avail = (await admin.get("/v1/availability/s", params={"location": uid})).json()
    assert avail["locations"][0]["available"] == 2
    assert avail["total_available"] == 2


async def test_adjustment_with_state_unsellable(admin: httpx.AsyncClient, uid: str) -> None:
    await put_location(admin, uid)
    await stock(admin, uid, s=6)
    item = {"sku": "s", "location": uid, "delta": 2, "reason": "return", "state": "unsellable"}
    (pos,) = (await admin.post("/v1/adjustments", json={"adjustments": [item]})).json()["results"]
    assert shape(pos) == (8, 0, 2, 6, 2)
    # A write-off of the damaged units.
    off = {**item, "delta": -2, "reason": "damage"}
    (pos,) = (await admin.post("/v1/adjustments", json={"adjustments": [off]})).json()["results"]
    assert shape(pos) == (6, 0, 0, 6, 3)
    # Writing off more unsellable units than there are: 409, nothing changes.
    resp = await admin.post("/v1/adjustments", json={"adjustments": [{**off, "delta": -1}]})
    assert assert_problem(resp, 409, "adjustments[0]")["shortages"][0]["available"] == 0
    assert shape((await admin.get(f"/v1/stock/{uid}/s")).json()) == (6, 0, 0, 6, 3)
    items = await settled_history(admin, uid, "s", 3)
    assert [(i["reason"], i["delta_on_hand"], i["delta_unsellable"]) for i in items] == [
        ("damage", -2, -2), ("return", 2, 2), ("receipt", 6, 0),
    ]  # fmt: skip


async def test_return_at_a_location_that_never_had_the_sku(
    admin: httpx.AsyncClient, uid: str
) -> None:
    await put_location(admin, uid)
    before = (await admin.get(f"/v1/stock/{uid}/never")).json()
    assert before["version"] == 0
    items = [
        {"sku": "never", "location": uid, "delta": 1, "reason": "return"},
        {"sku": "never", "location": uid, "delta": 1, "reason": "return", "state": "unsellable"},
    ]
    resp = await admin.post("/v1/adjustments", json={"adjustments": items})
    assert resp.status_code == 200, resp.text
    first, second = resp.json()["results"]
    assert shape(first) == (1, 0, 0, 1, 1)
    assert shape(second) == (2, 0, 1, 1, 2)
    listed = (await admin.get("/v1/availability/never")).json()["locations"]
    assert [(r["location"], r["available"]) for r in listed if r["location"] == uid] == [(uid, 1)]


async def test_store_key_moves_only_at_its_locations(
    admin: httpx.AsyncClient, client_for: KeyMaker, uid: str
) -> None:
    other = f"{uid}-b"
    await put_location(admin, uid)
    await put_location(admin, other)
    await stock(admin, uid, s=3)
    await stock(admin, other, s=3)
    clerk = await client_for("store", locations=[uid])
    assert (await move(clerk, uid, "s", 1, "unsellable", "damaged")).status_code == 200
    assert_problem(await move(clerk, other, "s", 1, "unsellable", "damaged"), 403)
    front = await client_for("storefront")
    assert_problem(await move(front, uid, "s", 1, "unsellable", "damaged"), 403)
    assert (await admin.get(f"/v1/stock/{other}/s")).json()["unsellable"] == 0


async def test_moves_bad_input_is_422(admin: httpx.AsyncClient, uid: str) -> None:
    await put_location(admin, uid)
    for item, field in [
        ({"qty": 0}, "qty"),
        ({"qty": 10**9 + 1}, "qty"),
        ({"to": "broken"}, "to"),
        ({"reason": "sale"}, "reason"),
    ]:
        body = {"sku": "s", "location": uid, "qty": 1, "to": "unsellable", "reason": "damaged"}
        resp = await admin.post("/v1/moves", json={"moves": [{**body, **item}]})
        assert field in assert_problem(resp, 422)["detail"]
    assert_problem(await admin.post("/v1/moves", json={"moves": []}), 422)
    resp = await move(admin, f"{uid}-nowhere", "s", 1, "unsellable", "damaged")
    assert_problem(resp, 404)


async def test_concurrent_moves_never_take_more_than_there_is(
    admin: httpx.AsyncClient, uid: str
) -> None:
    """50 concurrent moves of 1 unit into unsellable against 20 sellable: exactly 20 succeed."""
    await put_location(admin, uid)
    await stock(admin, uid, s=20)
    replies = await asyncio.gather(
        *(move(admin, uid, "s", 1, "unsellable", "damaged") for _ in range(50))
    )
    codes = sorted(r.status_code for r in replies)
    assert codes == [200] * 20 + [409] * 30
    assert shape((await admin.get(f"/v1/stock/{uid}/s")).json()) == (20, 0, 20, 0, 21)
