"""Transfers over HTTP: create (units leave `from`, incoming at `to`), partial and full receipt,
cancel before receipt, cancel after a receipt (409), finished transfers (409 with
`transfer_status`), shortages (409, nothing changed), list filters and paging, roles, idempotent
create, `?by=` with transfers; exact quantities after every step and ledger rows for every
movement."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from omnistock.redis import keys
from tests.e2e.conftest import KeyMaker, assert_problem, put_location, stock
from tests.e2e.test_import_history import settled_history
from tests.e2e.test_supply import pos

ETA = "2026-12-01T09:00:00Z"


async def send(
    client: httpx.AsyncClient, src: str, dst: str, lines: dict[str, int], **extra: Any
) -> httpx.Response:
    body = {"from": src, "to": dst, "lines": [{"sku": s, "qty": q} for s, q in lines.items()]}
    return await client.post("/v1/transfers", json={**body, **extra})


async def sent(
    client: httpx.AsyncClient, src: str, dst: str, lines: dict[str, int], **extra: Any
) -> dict[str, Any]:
    resp = await send(client, src, dst, lines, **extra)
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


async def receive(
    client: httpx.AsyncClient, tid: str, lines: dict[str, int] | None = None, **extra: Any
) -> httpx.Response:
    body: dict[str, Any] = dict(extra)
    if lines is not None:
        body["lines"] = [{"sku": s, "qty": q} for s, q in lines.items()]
    return await client.post(f"/v1/transfers/{tid}/receive", json=body)


async def two_places(admin: httpx.AsyncClient, uid: str, **skus: int) -> tuple[str, str]:
    src, dst = f"{uid}-from", f"{uid}-to"
    await put_location(admin, src)
    await put_location(admin, dst)
    if skus:
        await stock(admin, src, **skus)
    return src, dst


async def test_create_then_receive_partially_then_rest(admin: httpx.AsyncClient, uid: str) -> None:
    src, dst = await two_places(admin, uid, a=10, b=4)
    await stock(admin, dst, a=1)
    doc = await sent(admin, src, dst, {"a": 6, "b": 4}, ref="TR-1", eta=ETA)
    tid = doc["id"]
    assert tid.startswith("t") and doc["status"] == "in_transit"
    assert (doc["from"], doc["to"], doc["ref"], doc["eta"]) == (
        src, dst, "TR-1", "2026-12-01T09:00:00.000Z",
    )  # fmt: skip
    assert doc["lines"] == [
        {"sku": "a", "qty": 6, "received": 0}, {"sku": "b", "qty": 4, "received": 0},
    ]  # fmt: skip
    # (on_hand, incoming, available, version)
    assert await pos(admin, src, "a") == (4, 0, 4, 2)
    assert await pos(admin, src, "b") == (0, 0, 0, 2)
    assert await pos(admin, dst, "a") == (1, 6, 1, 2)
    assert await pos(admin, dst, "b") == (0, 4, 0, 1)
    resp = await receive(admin, tid, {"a": 2})
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "partially_received"
    assert resp.json()["lines"][0] == {"sku": "a", "qty": 6, "received": 2}
    assert await pos(admin, dst, "a") == (3, 4, 3, 3)
    done = (await receive(admin, tid)).json()
    assert done["status"] == "received"
    assert [ln["received"] for ln in done["lines"]] == [6, 4]
    assert await pos(admin, dst, "a") == (7, 0, 7, 4)
    assert await pos(admin, dst, "b") == (4, 0, 4, 2)
    assert await pos(admin, src, "a") == (4, 0, 4, 2)  # `from` untouched by receipts
    got = (await admin.get(f"/v1/transfers/{tid}")).json()
    assert got["status"] == "received" and got["lines"] == done["lines"]
    # Finished: receive and cancel are 409 with its status; nothing changes.
    assert assert_problem(await receive(admin, tid), 409)["transfer_status"] == "received"
    resp = await admin.post(f"/v1/transfers/{tid}/cancel")
    assert assert_problem(resp, 409)["transfer_status"] == "received"
    assert await pos(admin, dst, "a") == (7, 0, 7, 4)
    assert await pos(admin, src, "a") == (4, 0, 4, 2)
    out = await settled_history(admin, src, "a", 2)
    assert [(i["kind"], i["reason"], i["ref"], i["delta_on_hand"], i["on_hand"]) for i in out] == [
        ("transfer", "transfer_out", tid, -6, 4), ("adjust", "receipt", None, 10, 10),
    ]  # fmt: skip
    into = await settled_history(admin, dst, "a", 4)
    assert [(i["reason"], i["ref"], i["delta_on_hand"], i["delta_incoming"], i["incoming"])
            for i in into] == [
        ("transfer_received", tid, 4, -4, 0),
        ("transfer_received", tid, 2, -2, 4),
        ("transfer_incoming", tid, 0, 6, 6),
        ("receipt", None, 1, 0, 0),
    ]  # fmt: skip


async def test_cancel_before_receipt_puts_units_back(admin: httpx.AsyncClient, uid: str) -> None:
    src, dst = await two_places(admin, uid, a=5)
    tid = (await sent(admin, src, dst, {"a": 3}))["id"]
    assert await pos(admin, src, "a") == (2, 0, 2, 2)
    assert await pos(admin, dst, "a") == (0, 3, 0, 1)
    resp = await admin.post(f"/v1/transfers/{tid}/cancel")
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "cancelled"
    assert resp.json()["lines"] == [{"sku": "a", "qty": 3, "received": 0}]
    assert await pos(admin, src, "a") == (5, 0, 5, 3)
    assert await pos(admin, dst, "a") == (0, 0, 0, 2)
    for path in ("receive", "cancel"):
        resp = await admin.post(f"/v1/transfers/{tid}/{path}", json={})
        assert assert_problem(resp, 409)["transfer_status"] == "cancelled"
    assert await pos(admin, src, "a") == (5, 0, 5, 3)
    assert await pos(admin, dst, "a") == (0, 0, 0, 2)
    back = await settled_history(admin, src, "a", 3)
    assert [(i["reason"], i["ref"], i["delta_on_hand"]) for i in back] == [
        ("transfer_cancelled", tid, 3), ("transfer_out", tid, -3), ("receipt", None, 5),
    ]  # fmt: skip
    gone = await settled_history(admin, dst, "a", 2)
    assert [(i["reason"], i["delta_on_hand"], i["delta_incoming"]) for i in gone] == [
        ("transfer_cancelled", 0, -3), ("transfer_incoming", 0, 3),
    ]  # fmt: skip


async def test_cancel_after_a_receipt_is_refused(admin: httpx.AsyncClient, uid: str) -> None:
    src, dst = await two_places(admin, uid, a=5)
    tid = (await sent(admin, src, dst, {"a": 4}))["id"]
    assert (await receive(admin, tid, {"a": 1})).status_code == 200
    resp = await admin.post(f"/v1/transfers/{tid}/cancel")
    assert assert_problem(resp, 409)["transfer_status"] == "partially_received"
    assert await pos(admin, src, "a") == (1, 0, 1, 2)
    assert await pos(admin, dst, "a") == (1, 3, 1, 2)
    # Still receivable after the refused cancel.
    assert (await receive(admin, tid)).json()["status"] == "received"
    assert await pos(admin, dst, "a") == (4, 0, 4, 3)


async def test_shortage_changes_nothing(admin: httpx.AsyncClient, uid: str) -> None:
    src, dst = await two_places(admin, uid, a=5, b=1)
    await admin.post("/v1/reservations", json={"location": src, "lines": [{"sku": "a", "qty": 2}]})
    resp = await send(admin, src, dst, {"a": 4, "b": 1})
    body = assert_problem(resp, 409)
    assert body["shortages"] == [{"sku": "a", "requested": 4, "available": 3}]
    assert await pos(admin, src, "a") == (5, 0, 3, 2)
    assert await pos(admin, src, "b") == (1, 0, 1, 1)
    assert await pos(admin, dst, "a") == (0, 0, 0, 0)
    assert await pos(admin, dst, "b") == (0, 0, 0, 0)


async def test_bad_input(admin: httpx.AsyncClient, uid: str) -> None:
    src, dst = await two_places(admin, uid, a=5)
    assert_problem(await send(admin, src, src, {"a": 1}), 422, "to")
    assert_problem(await send(admin, src, f"{uid}-nowhere", {"a": 1}), 404)
    assert_problem(await send(admin, f"{uid}-nowhere", dst, {"a": 1}), 404)
    assert_problem(await send(admin, src, dst, {"a": 0}), 422)
    assert_problem(await send(admin, src, dst, {}), 422)
    assert_problem(await send(admin, src, dst, {"a": 1}, eta="2026-02-30T00:00:00Z"), 422, "eta")
    tid = (await sent(admin, src, dst, {"a": 1}))["id"]
    assert_problem(await receive(admin, tid, {"zzz": 1}), 422, "lines[0].sku")
    resp = await receive(admin, tid, {"a": 2}, over_receipt=False)
    assert assert_problem(resp, 409, "lines[0]")["shortages"] == [
        {"sku": "a", "location": dst, "state": "outstanding", "requested": 2, "available": 1}
    ]
    assert_problem(await admin.get("/v1/transfers/t0-aaaaaaaaaaaaaaaaaaaa"), 404)
    assert_problem(await admin.get("/v1/transfers/nope"), 422)
    assert_problem(await admin.post("/v1/transfers/t0-aaaaaaaaaaaaaaaaaaaa/cancel"), 404)
    assert_problem(await admin.post("/v1/transfers/t0-aaaaaaaaaaaaaaaaaaaa/receive", json={}), 404)
    assert_problem(
        await admin.get("/v1/transfers", params={"before": "t0-aaaaaaaaaaaaaaaaaaaa"}), 422
    )
    assert await pos(admin, src, "a") == (4, 0, 4, 2)
    assert await pos(admin, dst, "a") == (0, 1, 0, 1)


async def test_list_filters_and_paging(admin: httpx.AsyncClient, uid: str) -> None:
    src, dst = await two_places(admin, uid, a=20)
    third = f"{uid}-c"
    await put_location(admin, third)
    ids = [(await sent(admin, src, dst, {"a": 1}))["id"] for _ in range(4)]
    back = (await sent(admin, src, third, {"a": 1}))["id"]
    assert (await receive(admin, ids[1])).status_code == 200
    assert (await admin.post(f"/v1/transfers/{ids[2]}/cancel")).status_code == 200

    async def listed(**params: Any) -> list[str]:
        for _ in range(100):  # the list reads Postgres: wait for the persister
            resp = await admin.get("/v1/transfers", params=params)
            assert resp.status_code == 200, resp.text
            items = resp.json()["items"]
            by_id = {i["id"]: i["status"] for i in items}
            if (
                by_id.get(ids[1], "received") == "received"
                and by_id.get(ids[2], "cancelled") == "cancelled"
                and len(items) >= params.get("want", 0)
            ):
                return [i["id"] for i in items]
            await asyncio.sleep(0.05)
        raise AssertionError("the list did not settle")

    assert await listed(location=src, want=5) == [back, *reversed(ids)]
    assert await listed(location=dst, want=4) == list(reversed(ids))
    assert await listed(location=third, want=1) == [back]
    assert await listed(location=dst, status="received", want=1) == [ids[1]]
    assert await listed(location=dst, status="cancelled", want=1) == [ids[2]]
    assert await listed(location=src, status="in_transit", want=3) == [back, ids[3], ids[0]]
    page = (await admin.get("/v1/transfers", params={"location": src, "limit": 2})).json()
    assert [i["id"] for i in page["items"]] == [back, ids[3]]
    page2 = (
        await admin.get(
            "/v1/transfers", params={"location": src, "limit": 2, "before": page["next"]}
        )
    ).json()
    assert [i["id"] for i in page2["items"]] == [ids[2], ids[1]]
    page3 = (
        await admin.get(
            "/v1/transfers", params={"location": src, "limit": 2, "before": page2["next"]}
        )
    ).json()
    assert [i["id"] for i in page3["items"]] == [ids[0]] and page3["next"] is None
    assert_problem(await admin.get("/v1/transfers", params={"status": "lost"}), 422)


async def test_roles(admin: httpx.AsyncClient, client_for: KeyMaker, uid: str) -> None:
    src, dst = await two_places(admin, uid, a=10)
    at_src = await client_for("store", locations=[src])
    at_dst = await client_for("store", locations=[dst])
    erp = await client_for("integration")
    front = await client_for("storefront")
    feed = await client_for("feed")
    assert_problem(await send(at_dst, src, dst, {"a": 1}), 403)
    for client in (front, feed):
        assert_problem(await send(client, src, dst, {"a": 1}), 403)
    mine = (await sent(at_src, src, dst, {"a": 2}))["id"]
    theirs = (await sent(erp, src, dst, {"a": 3}))["id"]
    for client in (front, feed, at_src):
        assert_problem(await receive(client, mine), 403)
        assert (await client.get(f"/v1/transfers/{mine}")).status_code == 200
    for client in (front, feed, at_dst):
        assert_problem(await client.post(f"/v1/transfers/{theirs}/cancel"), 403)
    assert await pos(admin, src, "a") == (5, 0, 5, 3)
    assert (await receive(at_dst, mine, {"a": 1})).status_code == 200
    assert (await at_src.post(f"/v1/transfers/{theirs}/cancel")).json()["status"] == "cancelled"
    assert await pos(admin, src, "a") == (8, 0, 8, 4)
    assert await pos(admin, dst, "a") == (1, 1, 1, 4)


async def test_idempotent_create_and_cancel_replay(admin: httpx.AsyncClient, uid: str) -> None:
    src, dst = await two_places(admin, uid, a=5)
    headers = {"Idempotency-Key": f"tr-{uid}"}
    body = {"from": src, "to": dst, "lines": [{"sku": "a", "qty": 2}]}
    first = await admin.post("/v1/transfers", json=body, headers=headers)
    again = await admin.post("/v1/transfers", json=body, headers=headers)
    assert first.status_code == again.status_code == 201, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert await pos(admin, src, "a") == (3, 0, 3, 2)
    assert await pos(admin, dst, "a") == (0, 2, 0, 1)
    other = await admin.post("/v1/transfers", json={**body, "ref": "x"}, headers=headers)
    assert_problem(other, 422)
    tid = first.json()["id"]
    cancel_key = {"Idempotency-Key": f"trc-{uid}"}
    c1 = await admin.post(f"/v1/transfers/{tid}/cancel", headers=cancel_key)
    c2 = await admin.post(f"/v1/transfers/{tid}/cancel", headers=cancel_key)
    assert c1.status_code == c2.status_code == 200, c2.text
    assert c2.headers["idempotent-replayed"] == "true"
    assert c1.json()["status"] == "cancelled" and c2.json() == c1.json()
    assert await pos(admin, src, "a") == (5, 0, 5, 3)
    assert await pos(admin, dst, "a") == (0, 0, 0, 2)


async def test_available_by_with_transfers(admin: httpx.AsyncClient, uid: str) -> None:
    src, dst = await two_places(admin, uid, s=20)
    await stock(admin, dst, s=1)
    dated = (await sent(admin, src, dst, {"s": 3}, eta=ETA))["id"]
    await sent(admin, src, dst, {"s": 5})  # no eta: incoming, never due by a date

    async def by(when: str) -> tuple[int, int, int, int]:
        """(available, incoming on the position, incoming_by, available_by) at `dst`."""
        resp = await admin.get("/v1/availability/s", params={"by": when, "location": dst})
        assert resp.status_code == 200, resp.text
        (row,) = resp.json()["locations"]
        incoming = (await pos(admin, dst, "s"))[1]
        return row["available"], incoming, row["incoming_by"], row["available_by"]

    assert await by("2026-11-30T00:00:00Z") == (1, 8, 0, 1)
    assert await by(ETA) == (1, 8, 3, 4)
    assert await by("2099-12-31T00:00:00Z") == (1, 8, 3, 4)
    assert (await receive(admin, dated, {"s": 2})).status_code == 200
    assert await by(ETA) == (3, 6, 1, 4)
    assert (await admin.post(f"/v1/transfers/{dated}/cancel")).status_code == 409
    assert (await receive(admin, dated)).status_code == 200
    assert await by("2099-12-31T00:00:00Z") == (4, 5, 0, 4)


async def test_concurrent_transfers_draining_one_location(
    admin: httpx.AsyncClient, uid: str
) -> None:
    """Many concurrent transfers out of one location: available never goes below zero, every
    201 is complete (its units left `from` and are incoming at `to`), the others are 409 with
    shortages; the sums are exact."""
    src = f"{uid}-from"
    dsts = [f"{uid}-to{i}" for i in range(3)]
    for loc in (src, *dsts):
        await put_location(admin, loc)
    await stock(admin, src, a=50, b=40)
    asks = [(dsts[i % 3], 1 + i % 3, i % 2) for i in range(120)]  # (to, qty of a, qty of b)

    async def one(to: str, qa: int, qb: int) -> httpx.Response:
        lines = {"a": qa, "b": qb} if qb else {"a": qa}
        return await send(admin, src, to, lines)

    replies = await asyncio.gather(*(one(*ask) for ask in asks))
    won = [(ask, r.json()) for ask, r in zip(asks, replies, strict=True) if r.status_code == 201]
    lost = [(ask, r) for ask, r in zip(asks, replies, strict=True) if r.status_code != 201]
    assert won and lost
    for _, r in lost:
        assert assert_problem(r, 409)["shortages"]
    sent_a = sum(qa for (_, qa, _), _ in won)
    sent_b = sum(qb for (_, _, qb), _ in won)
    assert sent_a <= 50 and sent_b <= 40
    on_a, in_a, avail_a, _ = await pos(admin, src, "a")
    on_b, _, avail_b, _ = await pos(admin, src, "b")
    assert (on_a, in_a, avail_a) == (50 - sent_a, 0, 50 - sent_a)
    assert (on_b, avail_b) == (40 - sent_b, 40 - sent_b)
    # Each refusal was real: what is left could not cover it.
    for (_, qa, qb), _ in lost:
        assert qa > avail_a or qb > avail_b
    for to in dsts:
        mine = [doc for (dst, _, _), doc in won if dst == to]
        assert all(doc["status"] == "in_transit" and doc["to"] == to for doc in mine)
        want_a = sum(ln["qty"] for doc in mine for ln in doc["lines"] if ln["sku"] == "a")
        assert (await pos(admin, to, "a"))[:3] == (0, want_a, 0)
    # The ledger at `from` has one row per transfer of each sku, summing to what left.
    rows = await settled_history(admin, src, "a", 1 + len(won))
    outs = [i for i in rows if i["reason"] == "transfer_out"]
    assert sorted(i["ref"] for i in outs) == sorted(doc["id"] for _, doc in won)
    assert -sum(i["delta_on_hand"] for i in outs) == sent_a


async def test_concurrent_cancel_and_receive_one_wins(admin: httpx.AsyncClient, uid: str) -> None:
    """A cancel racing a receipt of the same transfer: exactly one wins; the units are either
    back at `from` or on hand at `to`, never both, never neither."""
    src, dst = await two_places(admin, uid, a=40)
    ids = [(await sent(admin, src, dst, {"a": 2}))["id"] for _ in range(20)]
    replies = await asyncio.gather(
        *(
            call
            for tid in ids
            for call in (admin.post(f"/v1/transfers/{tid}/cancel"), receive(admin, tid))
        )
    )
    cancelled = received = 0
    for tid, cancel, rcv in zip(ids, replies[::2], replies[1::2], strict=True):
        doc = (await admin.get(f"/v1/transfers/{tid}")).json()
        assert sorted((cancel.status_code, rcv.status_code)) == [200, 409], (tid, doc)
        if cancel.status_code == 200:
            cancelled += 1
            assert doc["status"] == "cancelled"
            assert assert_problem(rcv, 409)["transfer_status"] == "cancelled"
        else:
            received += 1
            assert doc["status"] == "received"
            assert assert_problem(cancel, 409)["transfer_status"] == "received"
    assert cancelled + received == 20
    assert (await pos(admin, src, "a"))[:3] == (2 * cancelled, 0, 2 * cancelled)
    assert (await pos(admin, dst, "a"))[:3] == (2 * received, 0, 2 * received)


async def test_concurrent_cancels_and_receipts_of_one_transfer(
    admin: httpx.AsyncClient, uid: str
) -> None:
    """Concurrent cancels of one transfer put its units back exactly once (every answer is 200
    cancelled or 409 cancelled); concurrent "receive everything" calls receive it once."""
    src, dst = await two_places(admin, uid, a=10)
    tid = (await sent(admin, src, dst, {"a": 4}))["id"]
    replies = await asyncio.gather(*(admin.post(f"/v1/transfers/{tid}/cancel") for _ in range(20)))
    for r in replies:
        if r.status_code == 200:
            assert r.json()["status"] == "cancelled"
        else:
            assert assert_problem(r, 409)["transfer_status"] == "cancelled"
    assert any(r.status_code == 200 for r in replies)
    assert (await pos(admin, src, "a"))[:3] == (10, 0, 10)
    assert (await pos(admin, dst, "a"))[:3] == (0, 0, 0)
    tid = (await sent(admin, src, dst, {"a": 3}))["id"]
    replies = await asyncio.gather(*(receive(admin, tid) for _ in range(20)))
    assert sorted(r.status_code for r in replies) == [200] + [409] * 19
    assert (await pos(admin, dst, "a"))[:3] == (3, 0, 3)
    assert (await pos(admin, src, "a"))[:3] == (7, 0, 7)


async def test_finished_transfers_gone_from_redis_answer_from_postgres(
    admin: httpx.AsyncClient, store: Any, uid: str
) -> None:
    """Past their Redis retention, finished transfers are read from Postgres, and receiving or
    cancelling them is still a 409 with their status."""
    src, dst = await two_places(admin, uid, a=5)
    done = (await sent(admin, src, dst, {"a": 2}, ref="R"))["id"]
    assert (await receive(admin, done)).status_code == 200
    dropped = (await sent(admin, src, dst, {"a": 1}))["id"]
    assert (await admin.post(f"/v1/transfers/{dropped}/cancel")).status_code == 200
    wanted = {done: "received", dropped: "cancelled"}
    for _ in range(100):  # wait for the persister to have both sides of both
        items = (await admin.get("/v1/transfers", params={"location": src})).json()["items"]
        if {i["id"]: i["status"] for i in items} == wanted:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the list did not settle")
    before = {tid: (await admin.get(f"/v1/transfers/{tid}")).json() for tid in wanted}
    for tid in wanted:  # what their TTLs would do
        p, q = store.partition(src), store.partition(dst)
        await store.client.delete(keys.transfer(p, tid), keys.transfer_shadow(q, tid))
    for tid, status in wanted.items():
        got = (await admin.get(f"/v1/transfers/{tid}")).json()
        assert got == before[tid] and got["status"] == status
        for path in ("receive", "cancel"):
            resp = await admin.post(f"/v1/transfers/{tid}/{path}", json={})
            assert assert_problem(resp, 409)["transfer_status"] == status
    assert (await pos(admin, src, "a"))[:3] == (3, 0, 3)
    assert (await pos(admin, dst, "a"))[:3] == (2, 0, 2)
