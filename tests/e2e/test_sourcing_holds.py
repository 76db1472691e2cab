"""POST /v1/sourcing/reservations, GET .../{id}, POST .../{id}/release over HTTP: the best option
held as ordinary reservations carrying ``sourcing`` (pickup and ship split over locations in
different partitions), release, idempotent replays, roles, the channel fence, the contract's
4xx, and the lost race that re-plans onto the next option."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import Counter
from typing import Any

import httpx
import msgspec

from omnistock.api.sourcing import SourcingHoldIn
from omnistock.domain.commands import Idempotency, idempotency_digest
from omnistock.domain.ids import new_reservation_id, new_sourcing_id, sourcing_partition
from omnistock.domain.sourcing_holds import HoldPart, HoldRequest, SourcingHold, record_partition
from omnistock.redis import keys
from omnistock.usecases.caches import BOOTSTRAP_ID
from tests.conftest import Servers
from tests.e2e.conftest import (
    ADMIN_KEY,
    AppServer,
    KeyMaker,
    app_settings,
    assert_problem,
    put_location,
    stock,
)
from tests.e2e.helpers import is_problem, position, reserve, snapshot, spread_ids

PATH = "/v1/sourcing/reservations"


def lines(**skus: int) -> list[dict[str, Any]]:
    return [{"sku": s, "qty": q} for s, q in skus.items()]


async def ship_sites(admin: httpx.AsyncClient, uid: str, count: int, **fields: Any) -> list[str]:
    """``count`` ship_from locations of group ``uid``, each in a partition of its own, with
    priorities 1, 2, 3... in that order."""
    ids = spread_ids(uid, count)
    for n, loc in enumerate(ids):
        await put_location(
            admin, loc, kind="warehouse", groups=[uid], ship_from=True, priority=n + 1, **fields
        )
    return ids


async def hold(client: httpx.AsyncClient, **body: Any) -> httpx.Response:
    headers = body.pop("headers", None)
    return await client.post(PATH, json=body, headers=headers)


def held_by_location(body: dict[str, Any]) -> dict[str, dict[str, int]]:
    return {
        r["location"]: {line["sku"]: line["reserved"] for line in r["lines"]}
        for r in body["reservations"]
    }


async def test_ship_split_is_held_as_ordinary_reservations_and_released(
    admin: httpx.AsyncClient, uid: str
) -> None:
    a, b, c = await ship_sites(admin, uid, 3)
    await stock(admin, a, x=5)
    await stock(admin, b, y=4)
    await stock(admin, c, z=2, x=1)
    resp = await hold(
        admin,
        lines=lines(x=3, y=2, z=2),
        fulfillment="ship",
        group=uid,
        ref="order-1",
        ttl_seconds=120,
        channel="web",
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    hid = body["id"]
    assert body["status"] == "held" and body["attempt"] == 1 and body["why"]
    assert held_by_location(body) == {a: {"x": 3}, b: {"y": 2}, c: {"z": 2}}
    for part in body["reservations"]:
        assert part["sourcing"] == hid
        assert (part["status"], part["channel"], part["ref"]) == ("active", "web", "order-1")
        # Every part is a normal reservation, rendered the same by GET /v1/reservations/{id}.
        got = await admin.get(f"/v1/reservations/{part['id']}")
        assert got.status_code == 200 and got.json() == part
    assert (await position(admin, a, "x"))["reserved"] == 3
    assert (await position(admin, c, "z"))["reserved"] == 2
    read = await admin.get(f"{PATH}/{hid}")
    assert read.status_code == 200 and read.json() == body

    # Commit one part the ordinary way; release then releases only the active parts.
    part_b = next(r for r in body["reservations"] if r["location"] == b)
    committed = await admin.post(f"/v1/reservations/{part_b['id']}/commit")
    assert committed.status_code == 200, committed.text
    released = await admin.post(f"{PATH}/{hid}/release")
    assert released.status_code == 200, released.text
    out = released.json()
    assert out["status"] == "released"
    assert {r["location"]: r["status"] for r in out["reservations"]} == {
        a: "released",
        b: "committed",
        c: "released",
    }
    assert (await position(admin, a, "x"))["reserved"] == 0
    assert (await position(admin, b, "y"))["on_hand"] == 2
    # A second release answers the same state.
    again = await admin.post(f"{PATH}/{hid}/release")
    assert again.status_code == 200 and again.json() == out
    assert again.headers.get("idempotent-replayed") == "true"


async def test_pickup_holds_one_location(admin: httpx.AsyncClient, uid: str) -> None:
    near = {"lat": 48.0, "lon": 11.0}
    a, b = spread_ids(uid, 2)
    await put_location(admin, a, groups=[uid], pickup=True, lat=48.05, lon=11.0)
    await put_location(admin, b, groups=[uid], pickup=True, lat=48.01, lon=11.0)
    await stock(admin, a, x=5, y=5)
    await stock(admin, b, x=5, y=1)
    resp = await hold(admin, lines=lines(x=2, y=1), fulfillment="pickup", near=near, group=uid)
    assert resp.status_code == 201, resp.text
    assert held_by_location(resp.json()) == {b: {"x": 2, "y": 1}}
    # b has no second y: the next pickup goes to a.
    resp = await hold(admin, lines=lines(x=2, y=1), fulfillment="pickup", near=near, group=uid)
    assert resp.status_code == 201, resp.text
    assert held_by_location(resp.json()) == {a: {"x": 2, "y": 1}}


async def test_no_option_is_a_409_with_summed_shortages(admin: httpx.AsyncClient, uid: str) -> None:
    a, b = await ship_sites(admin, uid, 2)
    await stock(admin, a, x=2)
    await stock(admin, b, x=1, y=1)
    before = await snapshot(admin, [(a, "x"), (b, "x"), (b, "y")])
    resp = await hold(admin, lines=lines(x=5, y=1), fulfillment="ship", group=uid)
    problem = assert_problem(resp, 409)
    assert problem["shortages"] == [{"sku": "x", "requested": 5, "available": 3}]
    assert "summed" in problem["detail"]
    assert await snapshot(admin, [(a, "x"), (b, "x"), (b, "y")]) == before


async def test_allow_partial_ship_holds_what_there_is_and_pickup_refuses_it(
    admin: httpx.AsyncClient, uid: str
) -> None:
    a, b = await ship_sites(admin, uid, 2)
    await stock(admin, a, x=2)
    await stock(admin, b, x=1, y=1)
    refused = await hold(
        admin, lines=lines(x=1), fulfillment="pickup", group=uid, allow_partial=True
    )
    assert_problem(refused, 422, "allow_partial")
    resp = await hold(
        admin, lines=lines(x=5, y=1), fulfillment="ship", group=uid, allow_partial=True
    )
    assert resp.status_code == 201, resp.text
    got = held_by_location(resp.json())
    assert sum(held.get("x", 0) for held in got.values()) == 3
    assert sum(held.get("y", 0) for held in got.values()) == 1


async def test_idempotent_replay_answers_the_same_hold(admin: httpx.AsyncClient, uid: str) -> None:
    a, b = await ship_sites(admin, uid, 2)
    await stock(admin, a, x=2)
    await stock(admin, b, y=2)
    body = {"lines": lines(x=1, y=1), "fulfillment": "ship", "group": uid}
    key = {"Idempotency-Key": f"{uid}-k1"}
    first = await hold(admin, **body, headers=key)
    assert first.status_code == 201, first.text
    again = await hold(admin, **body, headers=key)
    assert again.status_code == 201, again.text
    assert again.headers.get("idempotent-replayed") == "true"
    assert again.json() == first.json()
    assert (await position(admin, a, "x"))["reserved"] == 1  # held once
    other = await hold(admin, **{**body, "lines": lines(x=2)}, headers=key)
    assert_problem(other, 422)
    # Concurrent calls with one key hold once and answer the same id.
    key2 = {"Idempotency-Key": f"{uid}-k2"}
    answers = await asyncio.gather(*(hold(admin, **body, headers=key2) for _ in range(8)))
    assert {r.status_code for r in answers} == {201}, [r.text for r in answers]
    assert len({r.json()["id"] for r in answers}) == 1
    assert (await position(admin, a, "x"))["reserved"] == 2
    # A 409 is recorded too: its replay is the same 409, even once stock has come in.
    key3 = {"Idempotency-Key": f"{uid}-k3"}
    short = await hold(admin, **body, headers=key3)
    assert_problem(short, 409)
    assert short.json()["shortages"] == [
        {"sku": "x", "requested": 1, "available": 0},
        {"sku": "y", "requested": 1, "available": 0},
    ]
    await stock(admin, a, x=1)
    await stock(admin, b, y=1)
    again3 = await hold(admin, **body, headers=key3)
    assert_problem(again3, 409)
    assert again3.headers.get("idempotent-replayed") == "true"
    assert again3.json()["shortages"] == short.json()["shortages"]
    fresh = await hold(admin, **body, headers={"Idempotency-Key": f"{uid}-k4"})
    assert fresh.status_code == 201, fresh.text


async def test_release_is_idempotent_and_a_failed_hold_cannot_be_released(
    admin: httpx.AsyncClient, app_redis: Any, uid: str
) -> None:
    (a,) = await ship_sites(admin, uid, 1)
    await stock(admin, a, x=1)
    resp = await hold(admin, lines=lines(x=1), fulfillment="ship", group=uid)
    hid = resp.json()["id"]
    key = {"Idempotency-Key": f"{uid}-rel"}
    first = await admin.post(f"{PATH}/{hid}/release", headers=key)
    again = await admin.post(f"{PATH}/{hid}/release", headers=key)
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json() and first.json()["status"] == "released"
    for bad in ("nope", "s0-aaaaaaaaaaaaaaaaaaaa", "s99999-aaaaaaaaaaaaaaaaaaaa", hid + "x"):
        assert_problem(await admin.get(f"{PATH}/{bad}"), 404)
        assert_problem(await admin.post(f"{PATH}/{bad}/release"), 404)


async def test_roles_store_keys_and_storefront_ownership(
    admin: httpx.AsyncClient, client_for: KeyMaker, uid: str
) -> None:
    a, b = await ship_sites(admin, uid, 2)
    await stock(admin, a, x=3)
    await stock(admin, b, x=3)
    body = {"lines": lines(x=1), "fulfillment": "ship", "group": uid}
    # A store key of b only: options only at b.
    store_b = await client_for("store", locations=[b])
    resp = await hold(store_b, **body)
    assert resp.status_code == 201, resp.text
    assert list(held_by_location(resp.json())) == [b]
    # A store key elsewhere (a location outside the group) gets no options: 409.
    await put_location(admin, f"{uid}-other", ship_from=True)
    await stock(admin, f"{uid}-other", x=3)
    store_elsewhere = await client_for("store", locations=[f"{uid}-other"])
    assert_problem(await hold(store_elsewhere, **body), 409)
    feed = await client_for("feed")
    assert_problem(await hold(feed, **body), 403)
    # A storefront's hold is seen by it, admin and store keys of its locations; others: 404.
    shop = await client_for("storefront")
    mine = await hold(shop, **body)
    assert mine.status_code == 201, mine.text
    hid = mine.json()["id"]
    where = next(iter(held_by_location(mine.json())))
    assert (await shop.get(f"{PATH}/{hid}")).status_code == 200
    assert (await admin.get(f"{PATH}/{hid}")).status_code == 200
    local = await client_for("store", locations=[where])
    assert (await local.get(f"{PATH}/{hid}")).status_code == 200
    other_shop = await client_for("storefront", name="other-shop")
    assert_problem(await other_shop.get(f"{PATH}/{hid}"), 404)
    assert_problem(await other_shop.post(f"{PATH}/{hid}/release"), 404)
    assert (await shop.post(f"{PATH}/{hid}/release")).status_code == 200


async def test_channel_fence_web_cannot_take_fenced_units_store_can(
    admin: httpx.AsyncClient, uid: str
) -> None:
    (a,) = await ship_sites(admin, uid, 1, channel_safety_stock={"web": 2})
    await stock(admin, a, x=3)
    body = {"lines": lines(x=2), "fulfillment": "ship", "group": uid}
    web = await hold(admin, **body, channel="web")
    problem = assert_problem(web, 409)
    assert problem["shortages"] == [{"sku": "x", "requested": 2, "available": 1}]
    ok = await hold(admin, **body, channel="store")
    assert ok.status_code == 201, ok.text
    assert (await position(admin, a, "x"))["reserved"] == 2


async def test_bad_bodies_are_422(admin: httpx.AsyncClient, uid: str) -> None:
    for body in (
        {"lines": [], "fulfillment": "ship"},
        {"lines": lines(x=1), "fulfillment": "drone"},
        {"lines": lines(x=1), "fulfillment": "ship", "ttl_seconds": 0},
        {"lines": lines(x=1), "fulfillment": "ship", "radius_km": 5},
    ):
        assert_problem(await admin.post(PATH, json=body), 422)


async def test_a_lost_race_replans_onto_the_next_option(
    admin: httpx.AsyncClient, store: Any, uid: str, monkeypatch: Any
) -> None:
    """Between the plan and the hold, an ordinary reservation takes the stock of the best
    option's second part: the part of attempt 1 already held is released (the ledger shows the
    sourcing_undo), and attempt 2 holds the next option."""
    a, b, c = await ship_sites(admin, uid, 3)  # priorities 1, 2, 3
    await stock(admin, a, x=2)
    await stock(admin, b, y=1)
    await stock(admin, c, y=2)
    # Best: a + b (priorities 1 + 2); b's only y goes to a walk-in once planned, so the hold of
    # the part at b fails after a's part is held; the re-plan lands on a + c.
    original = type(store).hold_part
    raced = False

    async def racing_hold_part(self: Any, record: Any, part: Any) -> Any:
        nonlocal raced
        if not raced and part.location == b:
            raced = True
            await reserve(admin, b, y=1)
        return await original(self, record, part)

    monkeypatch.setattr(type(store), "hold_part", racing_hold_part)
    resp = await hold(admin, lines=lines(x=1, y=1), fulfillment="ship", group=uid)
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert raced and body["attempt"] == 2
    assert held_by_location(body) == {a: {"x": 1}, c: {"y": 1}}
    assert (await position(admin, a, "x"))["reserved"] == 1
    assert (await position(admin, b, "y"))["reserved"] == 1  # the walk-in's only
    # The ledger of a/x: receipt, attempt 1's reserve, its undo, attempt 2's reserve.
    for _ in range(100):
        items = (await admin.get(f"/v1/stock/{a}/x/history", params={"limit": 100})).json()
        if len(items["items"]) >= 4:
            break
        await asyncio.sleep(0.05)
    got = [(i["kind"], i["reason"]) for i in reversed(items["items"])]
    assert got == [
        ("adjust", "receipt"),
        ("reserve", "reserve"),
        ("release", "sourcing_undo"),
        ("reserve", "reserve"),
    ]


async def test_concurrent_holds_never_hold_more_than_there_is(
    app: AppServer, admin: httpx.AsyncClient, client_for: KeyMaker, uid: str
) -> None:
    """40 concurrent sourcing holds (each needs a split) over 4 locations with little stock:
    every 201 is complete (all its parts active, covering every line), every other answer is a
    409, nothing is held beyond the stock, and each position's reserved is exactly the sum of
    the active parts."""
    sites = await ship_sites(admin, uid, 4)
    stocked = {
        sites[0]: {"x": 5},
        sites[1]: {"y": 5},
        sites[2]: {"x": 3, "y": 1},
        sites[3]: {"y": 3},
    }
    for loc, skus in stocked.items():
        await stock(admin, loc, **skus)
    clients = []
    for n in range(8):
        made = await client_for("storefront", name=f"shop-{n}")
        clients.append(
            httpx.AsyncClient(
                base_url=app.url, headers={"Authorization": made.headers["Authorization"]},
                timeout=60,
            )
        )  # fmt: skip
    try:
        body = {"lines": lines(x=2, y=2), "fulfillment": "ship", "group": uid, "channel": "web"}
        results = await asyncio.gather(
            *(clients[n % len(clients)].post(PATH, json=body) for n in range(40))
        )
    finally:
        for client in clients:
            await client.aclose()
    statuses = Counter(r.status_code for r in results)
    assert set(statuses) <= {201, 409} and statuses[201] >= 1, statuses
    active: dict[tuple[str, str], int] = Counter()
    for resp in results:
        if resp.status_code == 409:
            assert is_problem(resp) and resp.json()["shortages"], resp.text
            continue
        got = resp.json()
        assert got["status"] == "held"
        covered: Counter[str] = Counter()
        for part in got["reservations"]:
            now = (await admin.get(f"/v1/reservations/{part['id']}")).json()
            assert now["status"] == "active" and now["sourcing"] == got["id"]
            for line in now["lines"]:
                assert line["reserved"] == line["qty"]
                covered[line["sku"]] += line["reserved"]
                active[(now["location"], line["sku"])] += line["reserved"]
        assert covered == {"x": 2, "y": 2}
    assert sum(active.values()) == 4 * statuses[201]
    for loc, skus in stocked.items():
        for sku, qty in skus.items():
            pos = await position(admin, loc, sku)
            assert pos["on_hand"] == qty
            assert pos["reserved"] == active[(loc, sku)] <= qty


async def test_a_replay_of_an_unfinished_hold_waits_for_the_courier(
    admin: httpx.AsyncClient, store: Any, uid: str
) -> None:
    """The first call's process went quiet after holding one part (its record pending, nothing
    answered): a replay with the same key waits until the worker's courier has finished it, then
    answers 201 with that hold."""
    a, b = await ship_sites(admin, uid, 2)
    await stock(admin, a, x=2)
    await stock(admin, b, y=2)
    body = {"lines": lines(x=1, y=1), "fulfillment": "ship", "group": uid}
    key = f"{uid}-quiet"
    fingerprint = hashlib.blake2b(digest_size=16)
    fingerprint.update(f"POST {PATH}\n".encode())
    fingerprint.update(
        msgspec.json.encode(msgspec.json.decode(json.dumps(body), type=SourcingHoldIn))
    )
    idem = Idempotency(
        key=key, digest=idempotency_digest(BOOTSTRAP_ID, key), body_hash=fingerprint.hexdigest()
    )
    parts = [
        HoldPart(reservation=new_reservation_id(store.partition(a)), location=a, lines=[("x", 1)]),
        HoldPart(reservation=new_reservation_id(store.partition(b)), location=b, lines=[("y", 1)]),
    ]
    p = record_partition(idem.digest, store.partitions)
    record = SourcingHold(
        id=new_sourcing_id(p), status="pending", attempt=1,
        request=HoldRequest(lines=[("x", 1), ("y", 1)], fulfillment="ship", ttl_ms=60_000),
        parts=parts, why="quiet", actor="bootstrap-admin", created_at=0, updated_at=0,
        lease_until=0,
    )  # fmt: skip
    assert await store.begin_hold(p, record, idem) == (record.id, False)
    assert (await store.hold_part(record, parts[0])).code == 0
    replay = await hold(admin, **body, headers={"Idempotency-Key": key})
    assert replay.status_code == 201, replay.text
    assert replay.headers.get("idempotent-replayed") == "true"
    got = replay.json()
    assert (got["id"], got["status"]) == (record.id, "held")
    assert sorted(r["id"] for r in got["reservations"]) == sorted(pt.reservation for pt in parts)
    assert all(r["status"] == "active" for r in got["reservations"])


async def test_concurrent_releases_release_each_part_once(
    admin: httpx.AsyncClient, app_redis: Any, store: Any, uid: str
) -> None:
    a, b = await ship_sites(admin, uid, 2)
    await stock(admin, a, x=2)
    await stock(admin, b, y=2)
    resp = await hold(admin, lines=lines(x=2, y=2), fulfillment="ship", group=uid)
    assert resp.status_code == 201, resp.text
    hid = resp.json()["id"]
    answers = await asyncio.gather(*(admin.post(f"{PATH}/{hid}/release") for _ in range(20)))
    assert {r.status_code for r in answers} == {200}, [r.text for r in answers]
    assert len({json.dumps(r.json(), sort_keys=True) for r in answers}) == 1
    assert answers[0].json()["status"] == "released"
    assert [r.headers.get("idempotent-replayed") for r in answers].count(None) == 1
    for loc, sku in ((a, "x"), (b, "y")):
        pos = await position(admin, loc, sku)
        assert (pos["on_hand"], pos["reserved"]) == (2, 0)
    # One release event per part in the partition streams.
    for part in resp.json()["reservations"]:
        p = store.partition(part["location"])
        kinds = [
            fields[b"k"]
            for _, fields in await app_redis.xrange(keys.stream(p))
            if b"r" in fields and json.loads(fields[b"r"])["id"] == part["id"]
        ]
        assert kinds == [b"reserve", b"release"]


async def test_the_plan_read_is_capped_to_the_nearest_candidates(
    servers: Servers, admin: httpx.AsyncClient, uid: str
) -> None:
    """With OMNISTOCK_SOURCING_MAX_PLAN_CELLS=100 and 2 lines, at most 50 candidates are read:
    the nearest; ``considered`` says 50, and a hold takes from them."""
    capped = AppServer(app_settings(servers, sourcing_max_plan_cells=100), worker=False)
    await capped.start()
    try:
        async with httpx.AsyncClient(
            base_url=capped.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30
        ) as client:
            ids = [f"{uid}-{n:02d}" for n in range(60)]
            for n, loc in enumerate(ids):  # n km north: the nearest are the first ids
                await put_location(
                    client, loc, groups=[uid], ship_from=True, priority=100 - n,
                    lat=48.0 + n / 111.195, lon=11.0,
                )  # fmt: skip
            await stock(client, ids[59], x=1, y=1)  # the farthest (and best priority)
            await stock(client, ids[40], x=1, y=1)
            near = {"lat": 48.0, "lon": 11.0}
            body = {"lines": lines(x=1, y=1), "fulfillment": "ship", "group": uid, "near": near}
            planned = await client.post("/v1/sourcing/plans", json=body)
            assert planned.status_code == 200, planned.text
            assert planned.json()["considered"] == 50
            assert [o["allocations"][0]["location"] for o in planned.json()["options"]] == [ids[40]]
            held = await client.post(PATH, json=body)
            assert held.status_code == 201, held.text
            assert list(held_by_location(held.json())) == [ids[40]]
    finally:
        await capped.stop()


async def test_a_hold_redis_no_longer_keeps_is_read_and_released_from_postgres(
    admin: httpx.AsyncClient, app_redis: Any, db: Any, store: Any, uid: str
) -> None:
    """Past its time in Redis (a part extended beyond the record's retention), GET answers the
    record Postgres keeps, and release still releases the active parts and the record."""
    (a,) = await ship_sites(admin, uid, 1)
    await stock(admin, a, x=2)
    resp = await hold(admin, lines=lines(x=2), fulfillment="ship", group=uid)
    assert resp.status_code == 201, resp.text
    body = resp.json()
    hid = body["id"]
    for _ in range(200):  # the persister writes the record's events
        raw = await db.fetchval("SELECT doc FROM sourcing_holds WHERE id = $1", hid)
        if raw is not None and '"held"' in raw:
            break
        await asyncio.sleep(0.05)
    p = sourcing_partition(hid, store.partitions)
    assert await app_redis.delete(keys.sourcing_hold(p, hid)) == 1
    read = await admin.get(f"{PATH}/{hid}")
    assert read.status_code == 200, read.text
    assert read.json() == body
    released = await admin.post(f"{PATH}/{hid}/release")
    assert released.status_code == 200, released.text
    assert released.json()["status"] == "released"
    assert [r["status"] for r in released.json()["reservations"]] == ["released"]
    assert (await position(admin, a, "x"))["reserved"] == 0
    again = await admin.get(f"{PATH}/{hid}")
    assert again.json()["status"] == "released"
