"""Locations (create/replace, defaults, groups, nearest first) and availability (one sku with
location / group / near filters, and the sku x location matrix)."""

from __future__ import annotations

from typing import Any

import httpx

from omnistock.domain.locations import distance_km
from tests.e2e.conftest import assert_problem, put_location, stock

# Around the Chicago Loop (41.8827, -87.6278): distances from there grow down this list.
PLACES = [("loop", 41.8827, -87.6278), ("rivernorth", 41.8923, -87.6341),
          ("lincolnpark", 41.9214, -87.6513), ("evanston", 42.0451, -87.6877),
          ("naperville", 41.7508, -88.1535)]  # fmt: skip
LOOP = "41.8827,-87.6278"


async def test_put_creates_then_replaces(admin: httpx.AsyncClient, uid: str) -> None:
    body = {"name": "Loop", "kind": "store", "lat": 41.88, "lon": -87.62, "groups": ["a", "b", "a"]}
    created = await admin.put(f"/v1/locations/{uid}", json=body)
    assert created.status_code == 201
    doc = created.json()
    assert {k: doc[k] for k in ("id", "name", "kind", "lat", "lon", "groups")} == {
        "id": uid, "name": "Loop", "kind": "store", "lat": 41.88, "lon": -87.62, "groups": ["a", "b"],
    }  # fmt: skip
    assert (doc["pickup"], doc["ship_from"], doc["safety_stock"], doc["limited_threshold"]) == (
        True,
        False,
        0,
        2,
    )
    assert doc["created_at"].endswith("Z") and doc["timezone"] is None

    replaced = await admin.put(
        f"/v1/locations/{uid}",
        json={
            "name": "Loop 2",
            "kind": "store",
            "pickup": False,
            "safety_stock": 3,
            "timezone": "America/Chicago",
        },
    )
    assert replaced.status_code == 200
    doc2 = replaced.json()
    assert (doc2["name"], doc2["pickup"], doc2["groups"], doc2["lat"], doc2["safety_stock"]) == (
        "Loop 2",
        False,
        [],
        None,
        3,
    )
    assert doc2["timezone"] == "America/Chicago" and doc2["created_at"] == doc["created_at"]
    assert (await admin.get(f"/v1/locations/{uid}")).json() == doc2


async def test_defaults_by_kind(admin: httpx.AsyncClient, uid: str) -> None:
    expected = {"store": (True, False), "franchise": (True, False), "kiosk": (True, False),
                "warehouse": (False, True), "dark_store": (False, True)}  # fmt: skip
    for kind, (pickup, ship) in expected.items():
        doc = (
            await admin.put(f"/v1/locations/{uid}-{kind}", json={"name": kind, "kind": kind})
        ).json()
        assert (doc["pickup"], doc["ship_from"]) == (pickup, ship), kind
    doc = (
        await admin.put(
            f"/v1/locations/{uid}-wh", json={"name": "W", "kind": "warehouse", "pickup": True}
        )
    ).json()
    assert doc["pickup"] is True


async def test_unknown_location_is_404(admin: httpx.AsyncClient, uid: str) -> None:
    resp = await admin.get(f"/v1/locations/{uid}-nowhere")
    assert_problem(resp, 404)
    assert uid in resp.json()["detail"]


async def test_safety_stock_change_applies_to_positions(admin: httpx.AsyncClient, uid: str) -> None:
    await put_location(admin, uid, safety_stock=1, limited_threshold=2)
    await stock(admin, uid, s=10)
    assert (await admin.get(f"/v1/stock/{uid}/s")).json()["available"] == 9
    await put_location(admin, uid, safety_stock=4, limited_threshold=6)
    pos = (await admin.get(f"/v1/stock/{uid}/s")).json()
    assert (pos["safety_stock"], pos["available"], pos["status"]) == (4, 6, "limited")
    # Reservations see the new safety stock too.
    body = {"location": uid, "lines": [{"sku": "s", "qty": 7}]}
    resp = await admin.post("/v1/reservations", json=body)
    assert resp.status_code == 409
    assert resp.json()["shortages"] == [{"sku": "s", "requested": 7, "available": 6}]


async def make_places(admin: httpx.AsyncClient, uid: str) -> list[str]:
    ids = []
    for n, (name, lat, lon) in enumerate(PLACES):
        loc = f"{uid}-{name}"
        groups = [f"{uid}-all"] + ([f"{uid}-city"] if n < 3 else [])
        await put_location(admin, loc, lat=lat, lon=lon, groups=groups)
        ids.append(loc)
    await put_location(admin, f"{uid}-nocoords", groups=[f"{uid}-all"])
    return ids


async def test_list_by_group_and_nearest_first(admin: httpx.AsyncClient, uid: str) -> None:
    ids = await make_places(admin, uid)
    city = (await admin.get("/v1/locations", params={"group": f"{uid}-city"})).json()["items"]
    assert [x["id"] for x in city] == sorted(ids[:3])
    assert all("distance_km" not in x for x in city)
    everything = (await admin.get("/v1/locations")).json()["items"]
    assert {*ids, f"{uid}-nocoords"} <= {x["id"] for x in everything}
    assert (await admin.get("/v1/locations", params={"group": f"{uid}-none"})).json() == {
        "items": []
    }

    near = await admin.get("/v1/locations", params={"group": f"{uid}-all", "near": LOOP})
    items = near.json()["items"]
    assert [x["id"] for x in items] == ids  # nearest first; no coordinates: not listed
    for item, (_, lat, lon) in zip(items, PLACES, strict=True):
        assert item["distance_km"] == round(distance_km(41.8827, -87.6278, lat, lon), 3)
    assert items[0]["distance_km"] == 0.0
    assert 45 < items[-1]["distance_km"] < 47  # Naperville is ~46 km from the Loop

    within = await admin.get(
        "/v1/locations", params={"group": f"{uid}-all", "near": LOOP, "radius_km": 5}
    )
    assert [x["id"] for x in within.json()["items"]] == ids[:3]


async def availability(admin: httpx.AsyncClient, sku: str, **params: Any) -> dict[str, Any]:
    resp = await admin.get(f"/v1/availability/{sku}", params=params)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


async def test_availability_filters(admin: httpx.AsyncClient, uid: str) -> None:
    ids = await make_places(admin, uid)
    sku = f"{uid}-sku"
    for loc, qty in zip(ids, [5, 0, 3, 8, 1], strict=True):
        if qty:
            await stock(admin, loc, **{sku: qty})
    await stock(admin, ids[1], **{sku: 2})
    await admin.put(f"/v1/stock/{ids[1]}/{sku}", json={"on_hand": 0})  # had it, sold out
    await admin.post(
        "/v1/reservations", json={"location": ids[0], "lines": [{"sku": sku, "qty": 2}]}
    )

    # No filter: every location that has (had) the sku, none that never did.
    every = await availability(admin, sku)
    assert every["sku"] == sku
    rows = {r["location"]: r for r in every["locations"]}
    assert set(rows) == set(ids)
    assert rows[ids[0]] == {"location": ids[0], "available": 3, "status": "in_stock", "on_hand": 5,
                            "reserved": 2, "pickup": True}  # fmt: skip
    assert (rows[ids[1]]["available"], rows[ids[1]]["status"]) == (0, "out_of_stock")
    assert (rows[ids[4]]["available"], rows[ids[4]]["status"]) == (1, "limited")
    assert every["total_available"] == 3 + 0 + 3 + 8 + 1

    # Named locations, in the order asked, even where the sku never was.
    named = await availability(admin, sku, location=[ids[3], f"{uid}-nocoords", ids[0]])
    assert [r["location"] for r in named["locations"]] == [ids[3], f"{uid}-nocoords", ids[0]]
    assert [r["available"] for r in named["locations"]] == [8, 0, 3]
    assert named["total_available"] == 11

    grouped = await availability(admin, sku, group=f"{uid}-city")
    assert [r["location"] for r in grouped["locations"]] == sorted(ids[:3])
    assert grouped["total_available"] == 6

    # A filter lists every location it matches, with the sku or not (here: other tests' places
    # share these coordinates, so the group keeps this test's own).
    near = await availability(admin, sku, near=LOOP, radius_km=20, group=f"{uid}-all")
    assert [r["location"] for r in near["locations"]] == ids[:4]
    assert [r["distance_km"] for r in near["locations"]] == [
        round(distance_km(41.8827, -87.6278, lat, lon), 3) for _, lat, lon in PLACES[:4]
    ]
    both = await availability(admin, sku, near=LOOP, group=f"{uid}-city")
    assert [r["location"] for r in both["locations"]] == ids[:3]
    assert both["total_available"] == 6

    nothing = await availability(admin, f"{uid}-never")
    assert nothing == {"sku": f"{uid}-never", "total_available": 0, "locations": []}


async def test_availability_matrix_is_sku_major(admin: httpx.AsyncClient, uid: str) -> None:
    a, b, c = f"{uid}-a", f"{uid}-b", f"{uid}-c"
    for loc in (a, b, c):
        await put_location(admin, loc)
    await stock(admin, a, x=5, y=1)
    await stock(admin, c, y=9)
    resp = await admin.post(
        "/v1/availability", json={"skus": ["y", "x", "z"], "locations": [c, a, b]}
    )
    assert resp.status_code == 200
    assert resp.json()["items"] == [
        {"sku": "y", "location": c, "available": 9, "status": "in_stock"},
        {"sku": "y", "location": a, "available": 1, "status": "limited"},
        {"sku": "y", "location": b, "available": 0, "status": "out_of_stock"},
        {"sku": "x", "location": c, "available": 0, "status": "out_of_stock"},
        {"sku": "x", "location": a, "available": 5, "status": "in_stock"},
        {"sku": "x", "location": b, "available": 0, "status": "out_of_stock"},
        {"sku": "z", "location": c, "available": 0, "status": "out_of_stock"},
        {"sku": "z", "location": a, "available": 0, "status": "out_of_stock"},
        {"sku": "z", "location": b, "available": 0, "status": "out_of_stock"},
    ]
    # The largest matrix allowed: 10,000 cells.
    big = {"skus": [f"s{i}" for i in range(100)], "locations": [a] * 100}
    resp = await admin.post("/v1/availability", json=big)
    assert resp.status_code == 200 and len(resp.json()["items"]) == 10_000
