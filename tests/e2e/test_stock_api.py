"""Stock positions over HTTP: reads, absolute sets with If-Match, adjustments."""

from __future__ import annotations

import httpx

from tests.e2e.conftest import assert_problem, put_location, stock


async def test_unknown_position_reads_as_zeros(admin: httpx.AsyncClient, uid: str) -> None:
    await put_location(admin, uid, safety_stock=1)
    resp = await admin.get(f"/v1/stock/{uid}/nothing-here")
    assert resp.status_code == 200
    assert resp.json() == {
        "sku": "nothing-here", "location": uid, "on_hand": 0, "reserved": 0, "safety_stock": 1,
        "available": 0, "status": "out_of_stock", "version": 0, "updated_at": None,
        "unsellable": 0, "incoming": 0,
    }  # fmt: skip
    assert resp.headers["etag"] == '"0"'


async def test_unknown_location_is_404(admin: httpx.AsyncClient, uid: str) -> None:
    assert_problem(await admin.get(f"/v1/stock/{uid}-nowhere/sku"), 404)
    assert_problem(await admin.put(f"/v1/stock/{uid}-nowhere/sku", json={"on_hand": 1}), 404)


async def test_status_thresholds(admin: httpx.AsyncClient, uid: str) -> None:
    await put_location(admin, uid, safety_stock=2, limited_threshold=3)
    expected = {2: (0, "out_of_stock"), 3: (1, "limited"), 5: (3, "limited"), 6: (4, "in_stock")}
    for on_hand, (available, status) in expected.items():
        body = (await admin.put(f"/v1/stock/{uid}/s", json={"on_hand": on_hand})).json()
        assert (body["available"], body["status"]) == (available, status)


async def test_put_with_if_match(admin: httpx.AsyncClient, uid: str) -> None:
    await put_location(admin, uid)
    first = await admin.put(f"/v1/stock/{uid}/s", json={"on_hand": 5}, headers={"If-Match": "0"})
    assert first.status_code == 200
    assert (first.json()["on_hand"], first.json()["version"]) == (5, 1)
    assert first.headers["etag"] == '"1"'
    stale = await admin.put(f"/v1/stock/{uid}/s", json={"on_hand": 9}, headers={"If-Match": "0"})
    assert assert_problem(stale, 412)["current_version"] == 1
    assert (await admin.get(f"/v1/stock/{uid}/s")).json()["on_hand"] == 5
    ok = await admin.put(f"/v1/stock/{uid}/s", json={"on_hand": 9}, headers={"If-Match": '"1"'})
    assert (ok.json()["on_hand"], ok.json()["version"]) == (9, 2)
    assert_problem(
        await admin.put(f"/v1/stock/{uid}/s", json={"on_hand": 1}, headers={"If-Match": "abc"}),
        422,
        "If-Match",
    )


async def test_put_own_safety_stock_and_clear_it(admin: httpx.AsyncClient, uid: str) -> None:
    await put_location(admin, uid, safety_stock=2)
    body = (await admin.put(f"/v1/stock/{uid}/s", json={"on_hand": 10, "safety_stock": 5})).json()
    assert (body["safety_stock"], body["available"]) == (5, 5)
    body = (await admin.put(f"/v1/stock/{uid}/s", json={"on_hand": 10})).json()
    assert body["safety_stock"] == 5
    body = (
        await admin.put(f"/v1/stock/{uid}/s", json={"on_hand": 10, "safety_stock": None})
    ).json()
    assert (body["safety_stock"], body["available"]) == (2, 8)


async def test_adjustments_in_input_order(admin: httpx.AsyncClient, uid: str) -> None:
    a, b = f"{uid}-a", f"{uid}-b"
    await put_location(admin, a)
    await put_location(admin, b)
    items = [
        {"sku": "x", "location": a, "delta": 10, "reason": "receipt", "ref": "PO-1"},
        {"sku": "x", "location": b, "delta": 4, "reason": "transfer_in"},
        {"sku": "x", "location": a, "delta": -3, "reason": "sale"},
    ]
    resp = await admin.post("/v1/adjustments", json={"adjustments": items})
    assert resp.status_code == 200
    results = resp.json()["results"]
    assert [(r["location"], r["on_hand"], r["version"]) for r in results] == [
        (a, 10, 1),
        (b, 4, 1),
        (a, 7, 2),
    ]


async def test_sale_below_reserved_is_reported_not_refused(
    admin: httpx.AsyncClient, uid: str
) -> None:
    await put_location(admin, uid)
    await stock(admin, uid, s=2)
    held = await admin.post(
        "/v1/reservations", json={"location": uid, "lines": [{"sku": "s", "qty": 2}]}
    )
    assert held.status_code == 201
    sale = {"adjustments": [{"sku": "s", "location": uid, "delta": -2, "reason": "sale"}]}
    resp = await admin.post("/v1/adjustments", json=sale)
    assert resp.status_code == 200
    (pos,) = resp.json()["results"]
    assert (pos["on_hand"], pos["reserved"], pos["available"]) == (0, 2, 0)
