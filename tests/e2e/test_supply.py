"""Supply over HTTP: create -> incoming, partial receipt, over-receipt, reschedule, cancel,
finished supply -> 409, list filters and paging, roles; exact quantities after every step and a
ledger row for every movement."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from omnistock.redis import keys
from tests.e2e.conftest import KeyMaker, assert_problem, put_location, stock
from tests.e2e.test_import_history import settled_history

ETA = "2026-12-01T09:00:00Z"


async def create(
    client: httpx.AsyncClient, loc: str, lines: dict[str, int], eta: str = ETA, **extra: Any
) -> httpx.Response:
    body = {
        "location": loc,
        "eta": eta,
        "lines": [{"sku": s, "qty": q} for s, q in lines.items()],
        **extra,
    }
    return await client.post("/v1/supply", json=body)


async def created(
    client: httpx.AsyncClient, loc: str, lines: dict[str, int], **kw: Any
) -> dict[str, Any]:
    resp = await create(client, loc, lines, **kw)
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


async def pos(client: httpx.AsyncClient, loc: str, sku: str) -> tuple[int, int, int, int]:
    p = (await client.get(f"/v1/stock/{loc}/{sku}")).json()
    return p["on_hand"], p["incoming"], p["available"], p["version"]


async def receive(
    client: httpx.AsyncClient, supply_id: str, lines: dict[str, int] | None = None, **extra: Any
) -> httpx.Response:
    body: dict[str, Any] = dict(extra)
    if lines is not None:
        body["lines"] = [{"sku": s, "qty": q} for s, q in lines.items()]
    return await client.post(f"/v1/supply/{supply_id}/receive", json=body)


async def test_create_receive_partially_then_rest(admin: httpx.AsyncClient, uid: str) -> None:
    await put_location(admin, uid)
    await stock(admin, uid, a=2)
    doc = await created(admin, uid, {"a": 10, "b": 4}, ref="PO-1", kind="production")
    assert doc["status"] == "open" and doc["kind"] == "production" and doc["ref"] == "PO-1"
    assert doc["eta"] == "2026-12-01T09:00:00.000Z"
    assert doc["lines"] == [
        {"sku": "a", "qty": 10, "received": 0}, {"sku": "b", "qty": 4, "received": 0},
    ]  # fmt: skip
    assert await pos(admin, uid, "a") == (2, 10, 2, 2)
    assert await pos(admin, uid, "b") == (0, 4, 0, 1)
    sid = doc["id"]
    resp = await receive(admin, sid, {"a": 3})
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "partially_received"
    assert resp.json()["lines"][0] == {"sku": "a", "qty": 10, "received": 3}
    assert await pos(admin, uid, "a") == (5, 7, 5, 3)
    assert await pos(admin, uid, "b") == (0, 4, 0, 1)
    done = (await receive(admin, sid)).json()  # everything outstanding
    assert done["status"] == "received"
    assert [ln["received"] for ln in done["lines"]] == [10, 4]
    assert await pos(admin, uid, "a") == (12, 0, 12, 4)
    assert await pos(admin, uid, "b") == (4, 0, 4, 2)
    # Finished: receive and cancel are 409 with its status.
    assert assert_problem(await receive(admin, sid), 409)["supply_status"] == "received"
    resp = await admin.post(f"/v1/supply/{sid}/cancel")
    assert assert_problem(resp, 409)["supply_status"] == "received"
    assert (await admin.get(f"/v1/supply/{sid}")).json()["status"] == "received"
    items = await settled_history(admin, uid, "a", 4)
    assert [(i["kind"], i["reason"], i["ref"], i["delta_on_hand"], i["delta_incoming"],
             i["incoming"]) for i in items] == [
        ("supply", "supply_received", sid, 7, -7, 0),
        ("supply", "supply_received", sid, 3, -3, 7),
        ("supply", "supply_created", sid, 0, 10, 10),
        ("adjust", "receipt", None, 2, 0, 0),
    ]  # fmt: skip


async def test_over_receipt(admin: httpx.AsyncClient, uid: str) -> None:
    await put_location(admin, uid)
    sid = (await created(admin, uid, {"a": 5}))["id"]
    # Refused when asked: nothing changes.
    resp = await receive(admin, sid, {"a": 6}, over_receipt=False)
    short = assert_problem(resp, 409, "lines[0]")["shortages"]
    assert short == [
        {"sku": "a", "location": uid, "state": "outstanding", "requested": 6, "available": 5}
    ]
    assert await pos(admin, uid, "a") == (0, 5, 0, 1)
    # By default beyond qty goes on hand; incoming never below 0.
    doc = (await receive(admin, sid, {"a": 8})).json()
    assert doc["status"] == "received" and doc["lines"][0]["received"] == 8
    assert await pos(admin, uid, "a") == (8, 0, 8, 2)


async def test_over_receipt_after_a_partial_one(admin: httpx.AsyncClient, uid: str) -> None:
    await put_location(admin, uid)
    other = (await created(admin, uid, {"a": 4}))["id"]  # incoming of another supply stays
    sid = (await created(admin, uid, {"a": 5}))["id"]
    assert (await receive(admin, sid, {"a": 2})).status_code == 200
    assert await pos(admin, uid, "a") == (2, 7, 2, 3)
    assert (await receive(admin, sid, {"a": 9})).json()["status"] == "received"
    assert await pos(admin, uid, "a") == (11, 4, 11, 4)
    assert (await admin.get(f"/v1/supply/{other}")).json()["status"] == "open"


async def test_reschedule_and_cancel(admin: httpx.AsyncClient, uid: str) -> None:
    await put_location(admin, uid)
    sid = (await created(admin, uid, {"a": 6}))["id"]
    resp = await admin.post(
        f"/v1/supply/{sid}/reschedule", json={"eta": "2026-12-24T12:00:00+01:00"}
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["eta"] == "2026-12-24T11:00:00.000Z"
    assert await pos(admin, uid, "a") == (0, 6, 0, 1)  # the position does not change
    assert (await receive(admin, sid, {"a": 1})).status_code == 200
    doc = (await admin.post(f"/v1/supply/{sid}/cancel")).json()
    assert doc["status"] == "cancelled"
    assert doc["lines"] == [{"sku": "a", "qty": 6, "received": 1}]
    assert await pos(admin, uid, "a") == (1, 0, 1, 3)  # received stays on hand
    for path, body in [("receive", {}), ("cancel", None), ("reschedule", {"eta": ETA})]:
        resp = await admin.post(f"/v1/supply/{sid}/{path}", json=body)
        assert assert_problem(resp, 409)["supply_status"] == "cancelled"
    items = await settled_history(admin, uid, "a", 3)
    assert [(i["reason"], i["delta_on_hand"], i["delta_incoming"]) for i in items] == [
        ("supply_cancelled", 0, -5), ("supply_received", 1, -1), ("supply_created", 0, 6),
    ]  # fmt: skip


async def test_bad_input(admin: httpx.AsyncClient, uid: str) -> None:
    await put_location(admin, uid)
    for eta in ["2026-02-30T00:00:00Z", "tomorrow", "1999-12-31T00:00:00Z", "2026-12-01"]:
        assert_problem(await create(admin, uid, {"a": 1}, eta=eta), 422, "eta")
    assert_problem(await create(admin, uid, {"a": 0}), 422)
    assert_problem(await create(admin, uid, {}), 422)
    assert_problem(await create(admin, f"{uid}-nowhere", {"a": 1}), 404)
    sid = (await created(admin, uid, {"a": 1}))["id"]
    assert_problem(await receive(admin, sid, {"zzz": 1}), 422, "lines[0].sku")
    assert_problem(await admin.get("/v1/supply/y0-aaaaaaaaaaaaaaaaaaaa"), 404)
    assert_problem(await admin.get("/v1/supply/nope"), 422)
    assert_problem(await admin.post("/v1/supply/y0-aaaaaaaaaaaaaaaaaaaa/cancel"), 404)
    assert_problem(await admin.get("/v1/supply", params={"before": "y0-aaaaaaaaaaaaaaaaaaaa"}), 422)
    assert await pos(admin, uid, "a") == (0, 1, 0, 1)


async def test_list_filters_and_paging(admin: httpx.AsyncClient, uid: str) -> None:
    other = f"{uid}-b"
    await put_location(admin, uid)
    await put_location(admin, other)
    ids = [(await created(admin, uid, {"a": 1, f"s{i}": 1}))["id"] for i in range(5)]
    elsewhere = (await created(admin, other, {"a": 1}))["id"]
    assert (await receive(admin, ids[1])).status_code == 200
    assert (await admin.post(f"/v1/supply/{ids[2]}/cancel")).status_code == 200

    async def listed(**params: Any) -> dict[str, Any]:
        for _ in range(100):  # the list reads Postgres: wait for the persister
            resp = await admin.get("/v1/supply", params=params)
            assert resp.status_code == 200, resp.text
            body = dict(resp.json())
            if all(i["status"] != "open" for i in body["items"] if i["id"] in ids[1:3]) and (
                len(body["items"]) >= min(params.get("limit", 100), 5)
                or params.get("status")
                or params.get("sku")
            ):
                return body
            await asyncio.sleep(0.05)
        raise AssertionError("the list did not settle")

    page = await listed(location=uid, limit=2)
    assert [i["id"] for i in page["items"]] == [ids[4], ids[3]]
    page2 = (
        await admin.get("/v1/supply", params={"location": uid, "limit": 2, "before": page["next"]})
    ).json()
    assert [i["id"] for i in page2["items"]] == [ids[2], ids[1]]
    page3 = (
        await admin.get("/v1/supply", params={"location": uid, "limit": 2, "before": page2["next"]})
    ).json()
    assert [i["id"] for i in page3["items"]] == [ids[0]] and page3["next"] is None
    assert [i["id"] for i in (await listed(location=uid, sku="s3"))["items"]] == [ids[3]]
    assert [i["id"] for i in (await listed(location=uid, status="received"))["items"]] == [ids[1]]
    assert [i["id"] for i in (await listed(location=uid, status="cancelled"))["items"]] == [ids[2]]
    by_sku = [i["id"] for i in (await listed(sku="a", limit=1000))["items"]]
    assert elsewhere in by_sku and set(ids) <= set(by_sku)
    assert_problem(await admin.get("/v1/supply", params={"status": "lost"}), 422)


async def test_roles(admin: httpx.AsyncClient, client_for: KeyMaker, uid: str) -> None:
    other = f"{uid}-b"
    await put_location(admin, uid)
    await put_location(admin, other)
    clerk = await client_for("store", locations=[uid])
    erp = await client_for("integration")
    front = await client_for("storefront")
    feed = await client_for("feed")
    mine = await created(clerk, uid, {"a": 2})
    assert_problem(await create(clerk, other, {"a": 2}), 403)
    theirs = await created(erp, other, {"a": 2})
    for client in (front, feed):
        assert_problem(await create(client, uid, {"a": 1}), 403)
        assert_problem(await receive(client, mine["id"]), 403)
        assert (await client.get(f"/v1/supply/{mine['id']}")).status_code == 200
    assert_problem(await receive(clerk, theirs["id"]), 403)
    assert_problem(await clerk.post(f"/v1/supply/{theirs['id']}/cancel"), 403)
    assert (await receive(clerk, mine["id"], {"a": 1})).status_code == 200
    assert (await receive(erp, theirs["id"])).json()["status"] == "received"
    assert await pos(admin, uid, "a") == (1, 1, 1, 2)


async def test_idempotent_receive_replays(admin: httpx.AsyncClient, uid: str) -> None:
    await put_location(admin, uid)
    sid = (await created(admin, uid, {"a": 3}))["id"]
    headers = {"Idempotency-Key": f"rcv-{uid}"}
    first = await admin.post(f"/v1/supply/{sid}/receive", json={}, headers=headers)
    again = await admin.post(f"/v1/supply/{sid}/receive", json={}, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert await pos(admin, uid, "a") == (3, 0, 3, 2)


async def test_concurrent_receipts_never_receive_more_than_outstanding(
    admin: httpx.AsyncClient, uid: str
) -> None:
    """The rule: receipts with over_receipt false never take more than is outstanding (exactly
    `qty` succeed, the rest 409); receipts of "everything outstanding" succeed once, the rest
    find the supply received (409)."""
    await put_location(admin, uid)
    sid = (await created(admin, uid, {"a": 30}))["id"]
    replies = await asyncio.gather(
        *(receive(admin, sid, {"a": 1}, over_receipt=False) for _ in range(60))
    )
    codes = sorted(r.status_code for r in replies)
    assert codes == [200] * 30 + [409] * 30
    assert await pos(admin, uid, "a") == (30, 0, 30, 31)
    assert (await admin.get(f"/v1/supply/{sid}")).json()["lines"][0]["received"] == 30
    sid2 = (await created(admin, uid, {"b": 7}))["id"]
    replies = await asyncio.gather(*(receive(admin, sid2) for _ in range(20)))
    assert sorted(r.status_code for r in replies) == [200] + [409] * 19
    assert await pos(admin, uid, "b") == (7, 0, 7, 2)


async def test_idempotent_create_and_moves_replay(admin: httpx.AsyncClient, uid: str) -> None:
    await put_location(admin, uid)
    await stock(admin, uid, a=4)
    headers = {"Idempotency-Key": f"po-{uid}"}
    body = {"location": uid, "eta": ETA, "lines": [{"sku": "a", "qty": 5}]}
    first = await admin.post("/v1/supply", json=body, headers=headers)
    again = await admin.post("/v1/supply", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    other = await admin.post("/v1/supply", json={**body, "ref": "x"}, headers=headers)
    assert_problem(other, 422)
    move = {"moves": [{"sku": "a", "location": uid, "qty": 1, "to": "unsellable",
                       "reason": "damaged"}]}  # fmt: skip
    headers = {"Idempotency-Key": f"mv-{uid}"}
    first = await admin.post("/v1/moves", json=move, headers=headers)
    again = await admin.post("/v1/moves", json=move, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    p = (await admin.get(f"/v1/stock/{uid}/a")).json()
    assert (p["on_hand"], p["unsellable"], p["incoming"], p["version"]) == (4, 1, 5, 3)


async def test_concurrent_receipts_with_over_receipt_allowed(
    admin: httpx.AsyncClient, uid: str
) -> None:
    """With over-receipt allowed (the default), only the receipt that finds less outstanding than
    it brings receives beyond qty: 40 concurrent receipts of 2 against 31 outstanding give exactly
    16 successes (15 x 2 and a last 2 of which 1 is over), the rest find the supply received."""
    await put_location(admin, uid)
    sid = (await created(admin, uid, {"a": 31}))["id"]
    replies = await asyncio.gather(*(receive(admin, sid, {"a": 2}) for _ in range(40)))
    ok = [r for r in replies if r.status_code == 200]
    refused = [r for r in replies if r.status_code != 200]
    assert len(ok) == 16
    assert {r.json()["supply_status"] for r in refused} == {"received"}
    assert await pos(admin, uid, "a") == (32, 0, 32, 17)
    doc = (await admin.get(f"/v1/supply/{sid}")).json()
    assert (doc["status"], doc["lines"][0]["received"]) == ("received", 32)


async def test_finished_supply_past_retention(
    admin: httpx.AsyncClient, app_redis: Any, store: Any, uid: str
) -> None:
    """Once Redis has let a finished supply go, it is read from Postgres, changes are 409 with its
    status, and a retried receipt with its Idempotency-Key still replays."""
    await put_location(admin, uid)
    sid = (await created(admin, uid, {"a": 2}))["id"]
    headers = {"Idempotency-Key": f"gone-{uid}"}
    first = await admin.post(f"/v1/supply/{sid}/receive", json={}, headers=headers)
    assert first.status_code == 200
    for _ in range(100):  # the persister writes it to Postgres
        listed = (await admin.get("/v1/supply", params={"location": uid})).json()["items"]
        if listed and listed[0]["status"] == "received":
            break
        await asyncio.sleep(0.05)
    await app_redis.delete(keys.supply(store.partition(uid), sid))  # as its retention ends
    assert (await admin.get(f"/v1/supply/{sid}")).json() == first.json()
    again = await admin.post(f"/v1/supply/{sid}/receive", json={}, headers=headers)
    assert again.status_code == 200 and again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    for path in ("receive", "cancel"):
        resp = await admin.post(f"/v1/supply/{sid}/{path}")
        assert assert_problem(resp, 409)["supply_status"] == "received"
    resp = await admin.post(f"/v1/supply/{sid}/reschedule", json={"eta": ETA})
    assert assert_problem(resp, 409)["supply_status"] == "received"
    assert await pos(admin, uid, "a") == (2, 0, 2, 2)
