"""POST /v1/sourcing/plans over HTTP: candidates (radius, group, locations, pickup/ship_from,
a store key's own locations), ranking (pickup nearest or by priority, ship fewest locations then
priority), the channel fence, the contract's 4xx, and that a plan holds nothing."""

from __future__ import annotations

from typing import Any

import httpx

from tests.e2e.conftest import KeyMaker, assert_problem, put_location, stock
from tests.e2e.helpers import snapshot

NEAR = {"lat": 48.0, "lon": 11.0}


async def place(
    admin: httpx.AsyncClient, loc: str, group: str, km_north: float | None, **fields: Any
) -> None:
    """A location in ``group``, ``km_north`` km north of NEAR (None: no coordinates)."""
    where = {} if km_north is None else {"lat": NEAR["lat"] + km_north / 111.195, "lon": 11.0}
    await put_location(admin, loc, groups=[group], **where, **fields)


async def plan(client: httpx.AsyncClient, **body: Any) -> httpx.Response:
    return await client.post("/v1/sourcing/plans", json=body)


async def options(client: httpx.AsyncClient, **body: Any) -> list[list[str]]:
    resp = await plan(client, **body)
    assert resp.status_code == 200, resp.text
    return [[a["location"] for a in o["allocations"]] for o in resp.json()["options"]]


def lines(**skus: int) -> list[dict[str, Any]]:
    return [{"sku": s, "qty": q} for s, q in skus.items()]


async def test_pickup_nearest_first_with_near_else_by_priority(
    admin: httpx.AsyncClient, uid: str
) -> None:
    a, b, c, far = f"{uid}a", f"{uid}b", f"{uid}c", f"{uid}far"
    await place(admin, a, uid, 5, priority=1, pickup=True)
    await place(admin, b, uid, 1, priority=9, pickup=True)
    await place(admin, c, uid, 3, priority=5, pickup=True)
    await place(admin, far, uid, 80, priority=0, pickup=True)  # past the 50 km default radius
    for loc in (a, b, c, far):
        await stock(admin, loc, x=5, y=5)
    resp = await plan(admin, lines=lines(x=2, y=1), fulfillment="pickup", near=NEAR, group=uid)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["considered"] == 3
    got = [(o["allocations"][0]["location"], o["locations"]) for o in body["options"]]
    assert got == [(b, 1), (c, 1), (a, 1)]
    first = body["options"][0]["allocations"][0]
    assert abs(first["distance_km"] - 1.0) < 0.01
    assert first["lines"] == [{"sku": "x", "qty": 2}, {"sku": "y", "qty": 1}]
    assert "nearest" in body["options"][0]["why"]
    # A wider radius takes the far one in; without near the order is by priority.
    wide = await options(
        admin, lines=lines(x=2), fulfillment="pickup", near=NEAR, radius_km=100, group=uid
    )
    assert wide == [[b], [c], [a], [far]]
    by_priority = await options(admin, lines=lines(x=2), fulfillment="pickup", group=uid)
    assert by_priority == [[far], [a], [c], [b]]
    assert await options(admin, lines=lines(x=2), fulfillment="pickup", group=uid, limit=2) == [
        [far],
        [a],
    ]


async def test_pickup_needs_pickup_and_every_line_in_full(
    admin: httpx.AsyncClient, uid: str
) -> None:
    full, short, nopick = f"{uid}full", f"{uid}short", f"{uid}nopick"
    await place(admin, full, uid, None, priority=50, pickup=True)
    await place(admin, short, uid, None, priority=1, pickup=True)
    await place(admin, nopick, uid, None, priority=0, pickup=False, kind="warehouse")
    await stock(admin, full, x=3, y=1)
    await stock(admin, short, x=3)
    await stock(admin, nopick, x=9, y=9)
    assert await options(admin, lines=lines(x=3, y=1), fulfillment="pickup", group=uid) == [[full]]


async def test_ship_fewest_locations_then_priority(admin: httpx.AsyncClient, uid: str) -> None:
    one_hi, one_lo, px, py, pz = (f"{uid}{n}" for n in ("onehi", "onelo", "px", "py", "pz"))
    for loc, prio in ((one_hi, 50), (one_lo, 10), (px, 0), (py, 0), (pz, 1)):
        await place(admin, loc, uid, None, priority=prio, ship_from=True)
    await stock(admin, one_hi, x=4, y=4)
    await stock(admin, one_lo, x=4, y=4)
    await stock(admin, px, x=4)
    await stock(admin, py, y=4)
    await stock(admin, pz, y=4)
    resp = await plan(admin, lines=lines(x=4, y=2), fulfillment="ship", group=uid)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["considered"] == 5
    got = [[a["location"] for a in o["allocations"]] for o in body["options"]]
    # Singles first (by priority), then splits by the sum of priorities.
    assert got == [[one_lo], [one_hi], [px, py], [px, pz]]
    assert [o["locations"] for o in body["options"]] == [1, 1, 2, 2]
    split = body["options"][2]["allocations"]
    assert [a["lines"] for a in split] == [[{"sku": "x", "qty": 4}], [{"sku": "y", "qty": 2}]]
    # max_locations=1: no splits.
    assert await options(
        admin, lines=lines(x=4, y=2), fulfillment="ship", group=uid, max_locations=1
    ) == [[one_lo], [one_hi]]


async def test_ship_split_across_locations_for_one_sku(admin: httpx.AsyncClient, uid: str) -> None:
    a, b, c = f"{uid}a", f"{uid}b", f"{uid}c"
    for loc, prio in ((a, 1), (b, 2), (c, 3)):
        await place(admin, loc, uid, None, priority=prio, ship_from=True)
    for loc in (a, b, c):
        await stock(admin, loc, x=3)
    resp = await plan(admin, lines=lines(x=7), fulfillment="ship", group=uid)
    assert resp.status_code == 200, resp.text
    (only,) = resp.json()["options"]
    assert only["locations"] == 3
    assert sum(line["qty"] for a_ in only["allocations"] for line in a_["lines"]) == 7
    nothing = await plan(admin, lines=lines(x=7), fulfillment="ship", group=uid, max_locations=2)
    assert nothing.json() == {"options": [], "considered": 3}


async def test_channel_fence_respected(admin: httpx.AsyncClient, uid: str) -> None:
    fenced, open_ = f"{uid}fenced", f"{uid}open"
    await place(
        admin, fenced, uid, None, priority=1, ship_from=True, channel_safety_stock={"web": 3}
    )
    await place(admin, open_, uid, None, priority=9, ship_from=True)
    await stock(admin, fenced, x=5)
    await stock(admin, open_, x=5)
    body = {"lines": lines(x=3), "fulfillment": "ship", "group": uid}
    assert await options(admin, **body) == [[fenced], [open_]]
    assert await options(admin, **body, channel="web") == [[open_]]
    assert await options(admin, **body, channel="store") == [[fenced], [open_]]
    # Past what either holds for web alone, the split uses only the unfenced units: 2 + 5.
    split = await plan(admin, lines=lines(x=7), fulfillment="ship", group=uid, channel="web")
    (only,) = split.json()["options"]
    assert [(a["location"], a["lines"]) for a in only["allocations"]] == [
        (fenced, [{"sku": "x", "qty": 2}]),
        (open_, [{"sku": "x", "qty": 5}]),
    ]
    assert (
        await options(admin, lines=lines(x=8), fulfillment="ship", group=uid, channel="web") == []
    )


async def test_radius_group_and_locations_filters(admin: httpx.AsyncClient, uid: str) -> None:
    near1, near2, far, other = f"{uid}n1", f"{uid}n2", f"{uid}far", f"{uid}other"
    await place(admin, near1, uid, 2, priority=1, ship_from=True)
    await place(admin, near2, uid, 10, priority=2, ship_from=True)
    await place(admin, far, uid, 300, priority=0, ship_from=True)
    await place(admin, other, f"{uid}g2", 1, priority=0, ship_from=True)
    for loc in (near1, near2, far, other):
        await stock(admin, loc, x=1)
    ship = {"lines": lines(x=1), "fulfillment": "ship"}
    # Ship has no default radius.
    assert await options(admin, **ship, group=uid, near=NEAR) == [[far], [near1], [near2]]
    assert await options(admin, **ship, group=uid, near=NEAR, radius_km=5) == [[near1]]
    assert await options(admin, **ship, group=uid, near=NEAR, radius_km=50) == [[near1], [near2]]
    assert await options(admin, **ship, group=f"{uid}g2") == [[other]]
    assert await options(admin, **ship, locations=[near2, other, f"{uid}unknown"]) == [
        [other],
        [near2],
    ]
    assert await options(admin, **ship, locations=[near2, other], group=uid) == [[near2]]
    resp = await plan(admin, **ship, locations=[])
    assert resp.json() == {"options": [], "considered": 0}


async def test_no_option_is_empty(admin: httpx.AsyncClient, uid: str) -> None:
    a = f"{uid}a"
    await place(admin, a, uid, None, pickup=True, ship_from=True)
    await stock(admin, a, x=1)
    for fulfillment in ("pickup", "ship"):
        resp = await plan(admin, lines=lines(x=2), fulfillment=fulfillment, group=uid)
        assert resp.json() == {"options": [], "considered": 1}
        resp = await plan(admin, lines=lines(unknown=1), fulfillment=fulfillment, group=uid)
        assert resp.json() == {"options": [], "considered": 1}
    resp = await plan(admin, lines=lines(x=1), fulfillment="ship", group=f"{uid}none")
    assert resp.json() == {"options": [], "considered": 0}


async def test_bad_bodies_are_422_naming_the_field(admin: httpx.AsyncClient, uid: str) -> None:
    ok: dict[str, Any] = {"lines": lines(x=1), "fulfillment": "ship"}
    bad: list[tuple[dict[str, Any], str]] = [
        ({"lines": []}, "lines"),
        ({"lines": [{"sku": "x", "qty": 0}]}, "lines[0].qty"),
        ({"lines": [{"sku": "x", "qty": 1_000_001}]}, "lines[0].qty"),
        ({"lines": [{"sku": "bad sku", "qty": 1}]}, "lines[0].sku"),
        ({"lines": lines(**{f"s{i}": 1 for i in range(101)})}, "lines"),
        ({"fulfillment": "drone"}, "fulfillment"),
        ({"near": {"lat": 91, "lon": 0}}, "near.lat"),
        ({"near": {"lat": 0, "lon": -181}}, "near.lon"),
        ({"near": {"lat": 0}}, "near.lon"),
        ({"near": NEAR, "radius_km": 0}, "radius_km"),
        ({"radius_km": 5}, "radius_km"),
        ({"group": "no good"}, "group"),
        ({"locations": [f"l{i}" for i in range(1001)]}, "locations"),
        ({"locations": ["ok", "no good"]}, "locations[1]"),
        ({"channel": "phone"}, "channel"),
        ({"max_locations": 0}, "max_locations"),
        ({"max_locations": 11}, "max_locations"),
        ({"limit": 0}, "limit"),
        ({"limit": 21}, "limit"),
        ({"limit": "5"}, "limit"),
    ]
    for fields, field in bad:
        assert_problem(await plan(admin, **{**ok, **fields}), 422, field)
    missing = await admin.post("/v1/sourcing/plans", json={"lines": lines(x=1)})
    assert_problem(missing, 422, "fulfillment")
    # Duplicate lines summed past the line bound name the line that passes it.
    over = await plan(admin, **{**ok, "lines": lines(x=600_000) + lines(x=600_000)})
    assert_problem(over, 422, "lines[1].qty")


async def test_feed_key_is_403_others_may_plan(
    admin: httpx.AsyncClient, client_for: KeyMaker, uid: str
) -> None:
    a = f"{uid}a"
    await place(admin, a, uid, None, ship_from=True)
    await stock(admin, a, x=1)
    body = {"lines": lines(x=1), "fulfillment": "ship", "group": uid}
    feed = await client_for("feed")
    assert_problem(await feed.post("/v1/sourcing/plans", json=body), 403)
    for role in ("integration", "storefront"):
        client = await client_for(role)
        assert await options(client, **body) == [[a]]


async def test_store_key_plans_over_its_own_locations(
    admin: httpx.AsyncClient, client_for: KeyMaker, uid: str
) -> None:
    mine, theirs = f"{uid}mine", f"{uid}theirs"
    await place(admin, mine, uid, None, priority=9, ship_from=True, pickup=True)
    await place(admin, theirs, uid, None, priority=1, ship_from=True, pickup=True)
    await stock(admin, mine, x=2)
    await stock(admin, theirs, x=5)
    client = await client_for("store", locations=[mine])
    assert await options(client, lines=lines(x=2), fulfillment="ship", group=uid) == [[mine]]
    assert await options(client, lines=lines(x=2), fulfillment="pickup") == [[mine]]
    asked = await plan(client, lines=lines(x=2), fulfillment="ship", locations=[theirs])
    assert asked.json() == {"options": [], "considered": 0}
    assert await options(client, lines=lines(x=5), fulfillment="ship", group=uid) == []
    assert await options(admin, lines=lines(x=2), fulfillment="ship", group=uid) == [
        [theirs],
        [mine],
    ]


async def test_a_plan_holds_nothing(admin: httpx.AsyncClient, uid: str) -> None:
    a, b = f"{uid}a", f"{uid}b"
    await place(admin, a, uid, 1, pickup=True, ship_from=True)
    await place(admin, b, uid, 2, pickup=True, ship_from=True)
    await stock(admin, a, x=3, y=1)
    await stock(admin, b, x=3)
    cells = [(loc, sku) for loc in (a, b) for sku in ("x", "y")]
    before = await snapshot(admin, cells)
    for _ in range(3):
        for fulfillment in ("pickup", "ship"):
            resp = await plan(
                admin, lines=lines(x=3, y=1), fulfillment=fulfillment, near=NEAR, group=uid
            )
            assert resp.json()["options"], resp.text
    assert await snapshot(admin, cells) == before
