"""Bulk import (streamed CSV / NDJSON) and the audit ledger of a position, over HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx

from omnistock.redis import keys
from omnistock.redis.store import StockStore
from tests.e2e.conftest import KeyMaker, assert_problem, put_location

CSV = {"Content-Type": "text/csv"}
NDJSON = {"Content-Type": "application/x-ndjson"}


async def history(client: httpx.AsyncClient, loc: str, sku: str, **params: Any) -> dict[str, Any]:
    resp = await client.get(f"/v1/stock/{loc}/{sku}/history", params=params)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


async def settled_history(
    client: httpx.AsyncClient, loc: str, sku: str, versions: int
) -> list[dict[str, Any]]:
    """The ledger comes from Postgres: wait (briefly) for the persister to have written it."""
    for _ in range(100):
        items = (await history(client, loc, sku, limit=1000))["items"]
        if len(items) >= versions:
            return list(items)
        await asyncio.sleep(0.05)
    raise AssertionError(f"history of {loc}/{sku} has fewer than {versions} entries")


async def test_csv_import_with_good_and_bad_lines(admin: httpx.AsyncClient, uid: str) -> None:
    await put_location(admin, uid)
    body = "\n".join([
        "location,sku,on_hand,safety_stock",
        f"{uid},a,10,",
        f"{uid},b,5,2",
        f"{uid},c,-1,",
        f"{uid}-nowhere,d,1,",
        f"{uid},bad sku,1,",
        f"{uid},e,1",
        "",
        f'"{uid}","f","7",""',
    ]) + "\n"  # fmt: skip
    resp = await admin.post("/v1/stock:import", content=body, headers=CSV)
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert out["rows"] == 3
    assert [(r["line"], r["error"].split(" ")[0]) for r in out["rejected"]] == [
        (4, "on_hand"), (5, "unknown"), (6, "sku"), (7, "expected"),
    ]  # fmt: skip
    assert out["rejected_total"] == 4
    a = (await admin.get(f"/v1/stock/{uid}/a")).json()
    b = (await admin.get(f"/v1/stock/{uid}/b")).json()
    f = (await admin.get(f"/v1/stock/{uid}/f")).json()
    assert (a["on_hand"], b["on_hand"], b["safety_stock"], f["on_hand"]) == (10, 5, 2, 7)
    assert (await admin.get(f"/v1/stock/{uid}/c")).json()["version"] == 0


async def test_ndjson_import_and_reimport_changes_nothing(
    admin: httpx.AsyncClient, store: StockStore, uid: str
) -> None:
    await put_location(admin, uid)
    lines = [f'{{"location":"{uid}","sku":"s{i}","on_hand":{i}}}' for i in range(50)]
    lines.insert(10, "{not json")
    body = "\n".join(lines)
    first = (await admin.post("/v1/stock:import", content=body, headers=NDJSON)).json()
    assert (first["rows"], [r["line"] for r in first["rejected"]]) == (50, [11])
    p = store.partition(uid)
    before = await store.client.xlen(keys.stream(p))
    again = (await admin.post("/v1/stock:import", content=body, headers=NDJSON)).json()
    assert again["rows"] == 50
    assert await store.client.xlen(keys.stream(p)) == before  # no event: nothing changed
    pos = (await admin.get(f"/v1/stock/{uid}/s7")).json()
    assert (pos["on_hand"], pos["version"]) == (7, 1)


async def test_import_is_streamed(admin: httpx.AsyncClient, uid: str) -> None:
    """A body sent in chunks is applied while it is still arriving: the server never waits for
    (or holds) the whole body."""
    await put_location(admin, uid)
    rows = 20_000
    first_batch_seen = asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        yield b"location,sku,on_hand\n"
        for start in range(0, rows, 1000):
            yield "".join(f"{uid},k{i},{i % 97}\n" for i in range(start, start + 1000)).encode()
            if start == 10_000:
                # Half the file is still to come: the first batches must already be in Redis.
                for _ in range(200):
                    if (await admin.get(f"/v1/stock/{uid}/k1")).json()["version"]:
                        first_batch_seen.set()
                        break
                    await asyncio.sleep(0.01)

    resp = await admin.post("/v1/stock:import", content=body(), headers=CSV)
    assert resp.status_code == 200, resp.text
    assert resp.json()["rows"] == rows
    assert first_batch_seen.is_set()
    assert (await admin.get(f"/v1/stock/{uid}/k19999")).json()["on_hand"] == 19999 % 97


async def test_import_refusals(admin: httpx.AsyncClient, client_for: KeyMaker, uid: str) -> None:
    await put_location(admin, uid)
    await put_location(admin, f"{uid}-other")
    assert_problem(
        await admin.post("/v1/stock:import", content="x", headers={"Content-Type": "text/plain"}),
        422,
        "Content-Type",
    )
    assert_problem(
        await admin.post("/v1/stock:import", content="sku,on_hand\nx,1\n", headers=CSV), 422, "body"
    )
    feed = await client_for("feed")
    assert_problem(
        await feed.post("/v1/stock:import", content="location,sku,on_hand\n", headers=CSV), 403
    )
    store_key = await client_for("store", locations=[uid])
    body = f"location,sku,on_hand\n{uid},a,1\n{uid}-other,a,1\n"
    out = (await store_key.post("/v1/stock:import", content=body, headers=CSV)).json()
    assert out["rows"] == 1
    assert out["rejected"][0]["line"] == 3 and "may not" in out["rejected"][0]["error"]


async def test_history_newest_first_with_paging(
    admin: httpx.AsyncClient, client_for: KeyMaker, uid: str
) -> None:
    await put_location(admin, uid)
    erp = await client_for("integration", name="erp-sync")
    for delta, reason in [(10, "receipt"), (-2, "sale"), (1, "return")]:
        item = {"sku": "h", "location": uid, "delta": delta, "reason": reason, "ref": f"R{delta}"}
        assert (await erp.post("/v1/adjustments", json={"adjustments": [item]})).status_code == 200
    held = await admin.post(
        "/v1/reservations", json={"location": uid, "lines": [{"sku": "h", "qty": 2}]}
    )
    rid = held.json()["id"]
    await admin.post(f"/v1/reservations/{rid}/commit")
    items = await settled_history(admin, uid, "h", 5)
    assert [(i["reason"], i["delta_on_hand"], i["delta_reserved"], i["on_hand"], i["reserved"], i["version"]) for i in items] == [
        ("commit", -2, -2, 7, 0, 5),
        ("reserve", 0, 2, 9, 2, 4),
        ("return", 1, 0, 9, 0, 3),
        ("sale", -2, 0, 8, 0, 2),
        ("receipt", 10, 0, 10, 0, 1),
    ]  # fmt: skip
    assert [i["actor"] for i in items] == [
        "bootstrap-admin",
        "bootstrap-admin",
        "erp-sync",
        "erp-sync",
        "erp-sync",
    ]
    assert items[0]["reservation_id"] == rid and items[2]["reservation_id"] is None
    assert (items[2]["ref"], items[0]["ref"]) == ("R1", None)
    assert items[0]["ts"].endswith("Z") and items[0]["event_id"]

    page1 = await history(admin, uid, "h", limit=2)
    page2 = await history(admin, uid, "h", limit=2, before=page1["next"])
    page3 = await history(admin, uid, "h", limit=2, before=page2["next"])
    assert [i["version"] for i in page1["items"] + page2["items"] + page3["items"]] == [
        5,
        4,
        3,
        2,
        1,
    ]
    assert page3["next"] is None
    assert (await history(admin, uid, "never-touched"))["items"] == []
    assert_problem(
        await admin.get(f"/v1/stock/{uid}/h/history", params={"before": "nope"}), 422, "before"
    )
    assert_problem(await admin.get(f"/v1/stock/{uid}/h/history", params={"limit": 0}), 422, "limit")
    assert_problem(await admin.get(f"/v1/stock/{uid}-x/h/history"), 404)


async def test_finished_reservation_is_read_from_postgres(
    admin: httpx.AsyncClient, store: StockStore, uid: str
) -> None:
    await put_location(admin, uid)
    await admin.post(
        "/v1/adjustments",
        json={"adjustments": [{"sku": "a", "location": uid, "delta": 5, "reason": "receipt"}]},
    )
    rid = (
        await admin.post(
            "/v1/reservations", json={"location": uid, "lines": [{"sku": "a", "qty": 2}]}
        )
    ).json()["id"]
    committed = (await admin.post(f"/v1/reservations/{rid}/commit")).json()
    await settled_history(admin, uid, "a", 3)  # persisted
    # Past its retention in Redis, the reservation is still readable from the record.
    await store.client.delete(keys.reservation(store.partition(uid), rid))
    resp = await admin.get(f"/v1/reservations/{rid}")
    assert resp.status_code == 200 and resp.json() == committed
    again = assert_problem(await admin.post(f"/v1/reservations/{rid}/release"), 409)
    assert again["reservation_status"] == "committed"
