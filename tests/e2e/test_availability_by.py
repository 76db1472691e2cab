"""Availability by date (`?by=`): incoming_by counts open supply with an ETA at or before `by`,
across reschedules, partial receipts and cancels; available_by = available + incoming_by."""

from __future__ import annotations

from typing import Any

import httpx

from tests.e2e.conftest import assert_problem, put_location, stock
from tests.e2e.test_supply import created, receive

DAY1, DAY2, DAY3 = "2026-12-01T09:00:00Z", "2026-12-02T09:00:00Z", "2026-12-03T09:00:00Z"


async def by(
    client: httpx.AsyncClient, sku: str, when: str, **params: Any
) -> list[tuple[Any, ...]]:
    resp = await client.get(f"/v1/availability/{sku}", params={"by": when, **params})
    assert resp.status_code == 200, resp.text
    return [
        (r["location"], r["available"], r["incoming_by"], r["available_by"])
        for r in resp.json()["locations"]
    ]


async def test_etas_before_at_and_after_by(admin: httpx.AsyncClient, uid: str) -> None:
    await put_location(admin, uid, safety_stock=1)
    await stock(admin, uid, s=5)
    early = (await created(admin, uid, {"s": 3}, eta=DAY1))["id"]
    at = (await created(admin, uid, {"s": 4}, eta=DAY2))["id"]
    await created(admin, uid, {"s": 10}, eta=DAY3)
    q = {"location": uid}
    assert await by(admin, "s", "2026-11-30T00:00:00Z", **q) == [(uid, 4, 0, 4)]
    assert await by(admin, "s", DAY1, **q) == [(uid, 4, 3, 7)]  # at: included
    assert await by(admin, "s", "2026-12-02T08:59:59.999Z", **q) == [(uid, 4, 3, 7)]
    assert await by(admin, "s", DAY2, **q) == [(uid, 4, 7, 11)]
    assert await by(admin, "s", "2026-12-02T10:00:00+01:00", **q) == [(uid, 4, 7, 11)]
    assert await by(admin, "s", "2027-01-01T00:00:00Z", **q) == [(uid, 4, 17, 21)]
    # A partial receipt: 2 of the early 3 arrive; 1 stays due at DAY1.
    assert (await receive(admin, early, {"s": 2})).status_code == 200
    assert await by(admin, "s", DAY1, **q) == [(uid, 6, 1, 7)]
    # Rescheduled later: no longer due by DAY2, due by DAY3.
    resp = await admin.post(f"/v1/supply/{at}/reschedule", json={"eta": DAY3})
    assert resp.status_code == 200
    assert await by(admin, "s", DAY2, **q) == [(uid, 6, 1, 7)]
    assert await by(admin, "s", DAY3, **q) == [(uid, 6, 15, 21)]
    # Rescheduled earlier, then cancelled.
    assert (await admin.post(f"/v1/supply/{at}/reschedule", json={"eta": DAY1})).status_code == 200
    assert await by(admin, "s", DAY1, **q) == [(uid, 6, 5, 11)]
    assert (await admin.post(f"/v1/supply/{at}/cancel")).status_code == 200
    assert await by(admin, "s", DAY1, **q) == [(uid, 6, 1, 7)]
    # Received in full: nothing of it is due any more.
    assert (await receive(admin, early)).status_code == 200
    assert await by(admin, "s", DAY3, **q) == [(uid, 7, 10, 17)]
    pos = (await admin.get(f"/v1/stock/{uid}/s")).json()
    assert (pos["on_hand"], pos["incoming"]) == (8, 10)


async def test_by_across_locations_with_channel(admin: httpx.AsyncClient, uid: str) -> None:
    a, b = f"{uid}-a", f"{uid}-b"
    await put_location(admin, a, groups=[uid], channel_safety_stock={"web": 1})
    await put_location(admin, b, groups=[uid])
    await stock(admin, a, s=3)
    await created(admin, b, {"s": 6}, eta=DAY1)
    rows = await by(admin, "s", DAY2, group=uid, channel="web")
    assert sorted(rows) == [(a, 2, 0, 2), (b, 0, 6, 6)]
    # Without by, no by fields.
    plain = (await admin.get("/v1/availability/s", params={"group": uid})).json()["locations"]
    assert all("incoming_by" not in r and "available_by" not in r for r in plain)


async def test_bad_by_is_422(admin: httpx.AsyncClient, uid: str) -> None:
    await put_location(admin, uid)
    for bad in ["soon", "2026-13-01T00:00:00Z", "2026-12-01", "2026-12-01T00:00:00"]:
        resp = await admin.get("/v1/availability/s", params={"location": uid, "by": bad})
        assert_problem(resp, 422)


async def next_due(
    client: httpx.AsyncClient, sku: str, loc: str, when: str
) -> tuple[Any, Any, Any]:
    resp = await client.get(f"/v1/availability/{sku}", params={"location": loc, "by": when})
    assert resp.status_code == 200, resp.text
    (row,) = resp.json()["locations"]
    return row["incoming_by"], row.get("next_eta"), row.get("next_incoming")


async def test_next_eta_and_units_due_at_it(admin: httpx.AsyncClient, uid: str) -> None:
    """The board's "due" read: the earliest ETA due by `by` and the units due at it (ties
    summed), across partial receipts, reschedules and cancels; absent when nothing is due."""
    await put_location(admin, uid)
    far = "2099-12-31T23:59:59Z"
    assert await next_due(admin, "s", uid, far) == (0, None, None)
    late = (await created(admin, uid, {"s": 4}, eta=DAY2))["id"]
    assert await next_due(admin, "s", uid, far) == (4, "2026-12-02T09:00:00.000Z", 4)
    first = (await created(admin, uid, {"s": 3}, eta=DAY1))["id"]
    tie = (await created(admin, uid, {"s": 2}, eta="2026-12-01T10:00:00+01:00"))["id"]
    assert await next_due(admin, "s", uid, far) == (9, "2026-12-01T09:00:00.000Z", 5)
    # Only what is due by `by` counts: before the first ETA, nothing.
    assert await next_due(admin, "s", uid, "2026-12-01T08:59:59Z") == (0, None, None)
    assert (await receive(admin, first, {"s": 1})).status_code == 200
    assert await next_due(admin, "s", uid, far) == (8, "2026-12-01T09:00:00.000Z", 4)
    resp = await admin.post(f"/v1/supply/{first}/reschedule", json={"eta": DAY3})
    assert resp.status_code == 200
    assert await next_due(admin, "s", uid, far) == (8, "2026-12-01T09:00:00.000Z", 2)
    assert (await admin.post(f"/v1/supply/{tie}/cancel")).status_code == 200
    assert await next_due(admin, "s", uid, far) == (6, "2026-12-02T09:00:00.000Z", 4)
    assert (await receive(admin, late)).status_code == 200
    assert await next_due(admin, "s", uid, far) == (2, "2026-12-03T09:00:00.000Z", 2)
    assert await next_due(admin, "s", uid, DAY2) == (0, None, None)


async def test_matrix_with_by_matches_the_sku_reads(admin: httpx.AsyncClient, uid: str) -> None:
    """POST /v1/availability with "by": each cell carries what GET ?by= says of it (the board
    reads a screen's due dates in one call); without "by", cells are as before."""
    a, b = f"{uid}-a", f"{uid}-b"
    await put_location(admin, a, channel_safety_stock={"web": 1})
    await put_location(admin, b)
    await stock(admin, a, s=3, t=1)
    await created(admin, a, {"s": 2, "t": 5}, eta=DAY2)
    await created(admin, a, {"s": 4}, eta=DAY1)
    await created(admin, b, {"t": 6}, eta=DAY3)
    body = {"skus": ["s", "t", "u"], "locations": [a, b], "channel": "web"}
    for when in (DAY1, DAY2, "2099-12-31T23:59:59Z"):
        resp = await admin.post("/v1/availability", json={**body, "by": when})
        assert resp.status_code == 200, resp.text
        cells = {(c["sku"], c["location"]): c for c in resp.json()["items"]}
        assert list(cells) == [(s, loc) for s in ("s", "t", "u") for loc in (a, b)]
        for sku in ("s", "t", "u"):
            params = {"location": [a, b], "by": when, "channel": "web"}
            one = (await admin.get(f"/v1/availability/{sku}", params=params)).json()
            for row in one["locations"]:
                cell = cells[(sku, row["location"])]
                for field in ("available", "status", "incoming_by", "available_by"):
                    assert cell[field] == row[field], (sku, row["location"], field)
                for field in ("next_eta", "next_incoming"):
                    assert cell.get(field) == row.get(field), (sku, row["location"], field)
    far = await admin.post("/v1/availability", json={**body, "by": "2099-12-31T23:59:59Z"})
    got = {
        (c["sku"], c["location"]): (c["incoming_by"], c.get("next_eta"), c.get("next_incoming"))
        for c in far.json()["items"]
    }
    assert got == {
        ("s", a): (6, "2026-12-01T09:00:00.000Z", 4),
        ("s", b): (0, None, None),
        ("t", a): (5, "2026-12-02T09:00:00.000Z", 5),
        ("t", b): (6, "2026-12-03T09:00:00.000Z", 6),
        ("u", a): (0, None, None),
        ("u", b): (0, None, None),
    }
    plain = (await admin.post("/v1/availability", json=body)).json()["items"]
    assert all(set(c) == {"sku", "location", "available", "status"} for c in plain)
    for bad in ["soon", "2026-12-01", "1999-12-01T00:00:00Z"]:
        assert_problem(await admin.post("/v1/availability", json={**body, "by": bad}), 422)
