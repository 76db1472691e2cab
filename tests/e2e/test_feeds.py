"""The Google local inventory feed (streamed TSV) and the paged position list of a location."""

from __future__ import annotations

import httpx

from omnistock.stream import cursor
from tests.e2e.conftest import KeyMaker, assert_problem, put_location, stock

HEADER = "store_code\tid\tquantity\tavailability"


async def receive(admin: httpx.AsyncClient, loc: str, skus: list[str], qty: int = 1) -> None:
    for at in range(0, len(skus), 1000):
        items = [
            {"sku": s, "location": loc, "delta": qty, "reason": "receipt"}
            for s in skus[at : at + 1000]
        ]
        resp = await admin.post("/v1/adjustments", json={"adjustments": items})
        assert resp.status_code == 200, resp.text


async def feed(client: httpx.AsyncClient, **params: str) -> tuple[httpx.Response, list[str]]:
    resp = await client.get("/v1/feeds/local-inventory", params=params)
    return resp, resp.text.splitlines()


async def test_feed_rows_and_availability(admin: httpx.AsyncClient, uid: str) -> None:
    a, b, group = f"{uid}-a", f"{uid}-b", f"{uid}-g"
    await put_location(admin, a, limited_threshold=2, groups=[group])
    await put_location(admin, b, groups=[group], safety_stock=1)
    await stock(admin, a, x=10, y=2, z=1)
    await stock(admin, b, x=3)
    sale = {"adjustments": [{"sku": "z", "location": a, "delta": -1, "reason": "sale"}]}
    assert (await admin.post("/v1/adjustments", json=sale)).status_code == 200
    held = await admin.post(
        "/v1/reservations", json={"location": a, "lines": [{"sku": "x", "qty": 4}]}
    )
    assert held.status_code == 201
    resp, lines = await feed(admin, location=a)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/tab-separated-values")
    assert len(cursor.decode(resp.headers["omnistock-cursor"], 64)) == 64
    assert lines[0] == HEADER
    assert sorted(lines[1:]) == [
        f"{a}\tx\t6\tin_stock",  # quantity is what can be promised: 10 on hand, 4 held
        f"{a}\ty\t2\tlimited_availability",
        f"{a}\tz\t0\tout_of_stock",
    ]
    _, by_group = await feed(admin, group=group)
    assert sorted(by_group[1:]) == sorted([*lines[1:], f"{b}\tx\t2\tlimited_availability"])
    _, everything = await feed(admin)
    assert set(by_group[1:]) <= set(everything[1:])
    _, empty = await feed(admin, group=f"{uid}-nobody")
    assert empty == [HEADER]


async def test_feed_of_a_big_location_has_each_position_once(
    admin: httpx.AsyncClient, uid: str
) -> None:
    await put_location(admin, uid)
    skus = [f"sku-{n:05d}" for n in range(2500)]
    await receive(admin, uid, skus, qty=5)
    _, lines = await feed(admin, location=uid)
    assert lines[0] == HEADER
    assert sorted(lines[1:]) == [f"{uid}\t{s}\t5\tin_stock" for s in skus]


async def test_feed_refusals(admin: httpx.AsyncClient, client_for: KeyMaker, uid: str) -> None:
    await put_location(admin, uid)
    for role in ("store", "storefront"):
        client = await client_for(role, locations=[uid])
        assert_problem(await client.get("/v1/feeds/local-inventory"), 403)
    feed_key = await client_for("feed")
    assert (await feed_key.get("/v1/feeds/local-inventory", params={"location": uid})).is_success
    assert_problem((await feed(admin, location=f"{uid}-nowhere"))[0], 404)
    assert_problem((await feed(admin, location=uid, group="g"))[0], 422, "group")
    assert_problem((await feed(admin, location="bad/id"))[0], 422)
    assert_problem((await feed(admin, group="no spaces"))[0], 422)


async def test_position_list_pages_and_search(admin: httpx.AsyncClient, uid: str) -> None:
    await put_location(admin, uid)
    skus = [f"Item-{n:03d}" for n in range(250)]
    await receive(admin, uid, skus, qty=2)
    seen: list[str] = []
    page: str | None = None
    pages = 0
    while True:
        params = {"limit": "100", **({"page": page} if page else {})}
        resp = await admin.get(f"/v1/stock/{uid}", params=params)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        items = body["items"]
        assert [i["sku"] for i in items] == sorted(i["sku"] for i in items)
        assert all(i["location"] == uid and i["on_hand"] == 2 for i in items)
        seen += [i["sku"] for i in items]
        pages += 1
        page = body["next"]
        if page is None:
            break
    assert sorted(seen) == skus and pages >= 2
    found = (await admin.get(f"/v1/stock/{uid}", params={"q": "item-12", "limit": "1000"})).json()
    assert [i["sku"] for i in found["items"]] == [f"Item-12{n}" for n in range(10)]
    assert found["next"] is None
    assert_problem(await admin.get(f"/v1/stock/{uid}", params={"q": "a*"}), 422, "q")
    assert_problem(await admin.get(f"/v1/stock/{uid}", params={"limit": "0"}), 422, "limit")
    assert_problem(await admin.get(f"/v1/stock/{uid}", params={"page": "x"}), 422, "page")
    assert_problem(await admin.get(f"/v1/stock/{uid}-nowhere"), 404)
