"""Reservations over HTTP: hold, read, commit (all or some), release, extend."""

from __future__ import annotations

import httpx

from omnistock.domain.clock import parse_rfc3339
from tests.e2e.conftest import assert_problem, put_location, stock
from tests.e2e.helpers import position, reserve


async def test_create_and_read(admin: httpx.AsyncClient, uid: str) -> None:
    await put_location(admin, uid)
    await stock(admin, uid, a=5, b=5)
    body = {
        "location": uid,
        "lines": [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 2}, {"sku": "a", "qty": 2}],
        "ttl_seconds": 120,
        "channel": "kiosk",
        "ref": "order 42",
    }
    resp = await admin.post("/v1/reservations", json=body)
    assert resp.status_code == 201
    doc = resp.json()
    assert doc["id"].startswith("r")
    assert doc["lines"] == [
        {"sku": "a", "qty": 3, "reserved": 3},
        {"sku": "b", "qty": 2, "reserved": 2},
    ]
    assert (doc["location"], doc["status"], doc["channel"], doc["ref"]) == (
        uid,
        "active",
        "kiosk",
        "order 42",
    )
    ttl = parse_rfc3339(doc["expires_at"]) - parse_rfc3339(doc["created_at"])
    assert ttl == 120_000
    assert (await admin.get(f"/v1/reservations/{doc['id']}")).json() == doc
    pos = await position(admin, uid, "a")
    assert (pos["on_hand"], pos["reserved"], pos["available"]) == (5, 3, 2)

    default = await reserve(admin, uid, b=1)
    ttl = parse_rfc3339(default["expires_at"]) - parse_rfc3339(default["created_at"])
    assert (ttl, default["channel"], default["ref"]) == (900_000, None, None)


async def test_shortage_names_every_short_line_and_holds_nothing(
    admin: httpx.AsyncClient, uid: str
) -> None:
    await put_location(admin, uid, safety_stock=1)
    await stock(admin, uid, a=3, b=10)
    body = {
        "location": uid,
        "lines": [{"sku": "a", "qty": 3}, {"sku": "b", "qty": 2}, {"sku": "c", "qty": 1}],
    }
    resp = await admin.post("/v1/reservations", json=body)
    assert_problem(resp, 409)
    assert resp.json()["shortages"] == [
        {"sku": "a", "requested": 3, "available": 2},
        {"sku": "c", "requested": 1, "available": 0},
    ]
    assert [(await position(admin, uid, s))["reserved"] for s in "abc"] == [0, 0, 0]

    partial = await admin.post("/v1/reservations", json={**body, "allow_partial": True})
    assert partial.status_code == 201
    assert partial.json()["lines"] == [
        {"sku": "a", "qty": 3, "reserved": 2},
        {"sku": "b", "qty": 2, "reserved": 2},
        {"sku": "c", "qty": 1, "reserved": 0},
    ]
    # Nothing at all to hold is a shortage even with allow_partial.
    nothing = {"location": uid, "lines": [{"sku": "c", "qty": 1}], "allow_partial": True}
    assert (await admin.post("/v1/reservations", json=nothing)).status_code == 409


async def test_commit_all_and_partial(admin: httpx.AsyncClient, uid: str) -> None:
    await put_location(admin, uid)
    await stock(admin, uid, a=10, b=10)
    whole = await reserve(admin, uid, a=2, b=1)
    resp = await admin.post(f"/v1/reservations/{whole['id']}/commit")
    assert resp.status_code == 200
    doc = resp.json()
    assert doc["status"] == "committed" and doc["finished_at"] is not None
    assert [(ln["sku"], ln["committed"]) for ln in doc["lines"]] == [("a", 2), ("b", 1)]
    a = await position(admin, uid, "a")
    assert (a["on_hand"], a["reserved"]) == (8, 0)

    some = await reserve(admin, uid, a=3, b=2)
    resp = await admin.post(
        f"/v1/reservations/{some['id']}/commit", json={"lines": [{"sku": "a", "qty": 1}]}
    )
    assert resp.status_code == 200
    assert [(ln["sku"], ln["committed"]) for ln in resp.json()["lines"]] == [("a", 1), ("b", 0)]
    a, b = await position(admin, uid, "a"), await position(admin, uid, "b")
    assert (a["on_hand"], a["reserved"], b["on_hand"], b["reserved"]) == (7, 0, 9, 0)

    again = await admin.post(f"/v1/reservations/{some['id']}/release")
    assert again.status_code == 409 and again.json()["reservation_status"] == "committed"


async def test_release_and_extend(admin: httpx.AsyncClient, uid: str) -> None:
    await put_location(admin, uid)
    await stock(admin, uid, a=4)
    held = await reserve(admin, uid, a=4)
    resp = await admin.post(f"/v1/reservations/{held['id']}/extend", json={"ttl_seconds": 3600})
    assert resp.status_code == 200
    extended = resp.json()
    assert parse_rfc3339(extended["expires_at"]) - parse_rfc3339(held["created_at"]) >= 3_600_000
    assert extended["status"] == "active"
    resp = await admin.post(f"/v1/reservations/{held['id']}/release")
    assert (resp.status_code, resp.json()["status"]) == (200, "released")
    assert (await position(admin, uid, "a"))["available"] == 4
    for verb, body in (("commit", None), ("release", None), ("extend", {"ttl_seconds": 5})):
        resp = await admin.post(f"/v1/reservations/{held['id']}/{verb}", json=body)
        assert_problem(resp, 409)
        assert resp.json()["reservation_status"] == "released"
        assert resp.json()["type"] == "urn:omnistock:problem:reservation-not-active"
