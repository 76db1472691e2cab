"""Location priority and channel fences over HTTP: PUT/GET round trip, channel availability on
single, near and batch reads, and reservations held against the channel's availability."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from omnistock.domain.reservations import CHANNELS
from tests.e2e.conftest import assert_problem, put_location, stock
from tests.e2e.helpers import position

FENCES = {"web": 4, "marketplace": 6, "app": 0}


async def hold(
    client: httpx.AsyncClient, loc: str, sku: str, qty: int, channel: str | None
) -> httpx.Response:
    body: dict[str, Any] = {"location": loc, "lines": [{"sku": sku, "qty": qty}]}
    if channel is not None:
        body["channel"] = channel
    return await client.post("/v1/reservations", json=body)


async def test_priority_and_fences_round_trip(admin: httpx.AsyncClient, uid: str) -> None:
    plain = await put_location(admin, uid)
    assert (plain["priority"], plain["channel_safety_stock"]) == (100, {})
    put = await put_location(admin, uid, priority=7, channel_safety_stock=FENCES)
    assert (put["priority"], put["channel_safety_stock"]) == (7, FENCES)
    got = (await admin.get(f"/v1/locations/{uid}")).json()
    assert got == put
    listed = (await admin.get("/v1/locations")).json()["items"]
    mine = [item for item in listed if item["id"] == uid]
    assert [(m["priority"], m["channel_safety_stock"]) for m in mine] == [(7, FENCES)]
    # Replacing without them resets them to the defaults, as every other field.
    again = await put_location(admin, uid)
    assert (again["priority"], again["channel_safety_stock"]) == (100, {})


async def test_bad_priority_and_fences_are_422_and_change_nothing(
    admin: httpx.AsyncClient, uid: str
) -> None:
    await put_location(admin, uid, priority=3, channel_safety_stock={"web": 1})
    bad: list[tuple[dict[str, Any], str]] = [
        ({"priority": 1001}, "priority"),
        ({"priority": -1}, "priority"),
        ({"priority": 1.5}, "priority"),
        ({"channel_safety_stock": {"web": -1}}, "channel_safety_stock.web"),
        ({"channel_safety_stock": {"phone": 1}}, "channel_safety_stock"),
        ({"channel_safety_stock": {"web": "2"}}, "channel_safety_stock.web"),
        ({"channel_safety_stock": [1]}, "channel_safety_stock"),
        ({"channel_safety_stock": {"web": 10**12 + 1}}, "channel_safety_stock.web"),
    ]
    for fields, field in bad:
        body = {"name": "x", "kind": "store", **fields}
        resp = await admin.put(f"/v1/locations/{uid}", json=body)
        assert_problem(resp, 422, field)
    got = (await admin.get(f"/v1/locations/{uid}")).json()
    assert (got["priority"], got["channel_safety_stock"]) == (3, {"web": 1})


async def test_web_reservation_cannot_take_fenced_units_store_can(
    admin: httpx.AsyncClient, uid: str
) -> None:
    await put_location(admin, uid, safety_stock=1, channel_safety_stock={"web": 4})
    await stock(admin, uid, a=10)
    short = await hold(admin, uid, "a", 6, "web")
    body = assert_problem(short, 409)
    assert body["shortages"] == [{"sku": "a", "requested": 6, "available": 5}]
    assert (await hold(admin, uid, "a", 5, "web")).status_code == 201
    assert assert_problem(await hold(admin, uid, "a", 1, "web"), 409)["shortages"] == [
        {"sku": "a", "requested": 1, "available": 0}
    ]
    assert (await hold(admin, uid, "a", 4, "store")).status_code == 201
    assert_problem(await hold(admin, uid, "a", 1, "store"), 409)
    pos = await position(admin, uid, "a")
    assert (pos["on_hand"], pos["reserved"], pos["available"]) == (10, 9, 0)


async def test_availability_reads_agree_with_what_each_channel_can_hold(
    admin: httpx.AsyncClient, uid: str
) -> None:
    loc = f"{uid}-x"
    await put_location(
        admin, loc, lat=48.85, lon=2.35, safety_stock=1, limited_threshold=2,
        channel_safety_stock=FENCES,
    )  # fmt: skip
    await stock(admin, loc, a=9)
    for channel in (*CHANNELS, None):
        query = f"?location={loc}" + (f"&channel={channel}" if channel else "")
        single = (await admin.get(f"/v1/availability/a{query}")).json()["locations"][0]
        near_q = "?near=48.85,2.35&radius_km=0.01" + (f"&channel={channel}" if channel else "")
        near = (await admin.get(f"/v1/availability/a{near_q}")).json()["locations"]
        batch_body: dict[str, Any] = {"skus": ["a"], "locations": [loc]}
        if channel:
            batch_body["channel"] = channel
        cell = (await admin.post("/v1/availability", json=batch_body)).json()["items"][0]
        expected = max(0, 8 - FENCES.get(channel or "", 0))
        status = "out_of_stock" if expected == 0 else "limited" if expected <= 2 else "in_stock"
        assert (single["available"], single["status"]) == (expected, status), channel
        assert [(n["location"], n["available"], n["status"]) for n in near] == [
            (loc, expected, status)
        ]
        assert (cell["available"], cell["status"]) == (expected, status), channel
        # Exactly what the read says can be held, no more.
        over = assert_problem(await hold(admin, loc, "a", expected + 1, channel), 409)
        assert over["shortages"] == [{"sku": "a", "requested": expected + 1, "available": expected}]
        held = await hold(admin, loc, "a", expected, channel)
        assert held.status_code == 201, held.text
        released = await admin.post(f"/v1/reservations/{held.json()['id']}/release")
        assert released.status_code == 200


async def test_unknown_channel_on_reads_is_422(admin: httpx.AsyncClient, uid: str) -> None:
    await put_location(admin, uid)
    assert_problem(await admin.get(f"/v1/availability/a?location={uid}&channel=phone"), 422)
    body = {"skus": ["a"], "locations": [uid], "channel": "phone"}
    assert_problem(await admin.post("/v1/availability", json=body), 422, "channel")
    assert_problem(await hold(admin, uid, "a", 1, "phone"), 422, "channel")


async def test_concurrent_web_reservations_never_take_fenced_units(
    admin: httpx.AsyncClient, uid: str
) -> None:
    await put_location(admin, uid, channel_safety_stock={"web": 15})
    await stock(admin, uid, hot=40)
    answers = await asyncio.gather(*(hold(admin, uid, "hot", 1, "web") for _ in range(80)))
    codes = sorted(r.status_code for r in answers)
    assert codes == [201] * 25 + [409] * 55
    pos = await position(admin, uid, "hot")
    assert (pos["on_hand"], pos["reserved"]) == (40, 25)
    web = (await admin.get(f"/v1/availability/hot?location={uid}&channel=web")).json()
    assert web["total_available"] == 0
    # The 15 fenced units are all there for the store channel.
    assert (await hold(admin, uid, "hot", 15, "store")).status_code == 201
    assert (await position(admin, uid, "hot"))["reserved"] == 40
