"""The change stream over a real WebSocket: delivery, filters, status_only, groups, errors, auth."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from omnistock.stream import cursor
from tests.e2e.conftest import AppServer, KeyMaker, put_location, stock
from tests.e2e.stream.client import change_of, set_on_hand, stream, ws_url

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


async def test_change_reaches_matching_subscriber_only(
    app: AppServer, admin: httpx.AsyncClient, uid: str
) -> None:
    await put_location(admin, uid, limited_threshold=2)
    async with stream(app) as ws:
        await ws.subscribe("at-loc", locations=[uid])
        await ws.subscribe("other-sku", locations=[uid], skus=["probe"])
        pos = await set_on_hand(admin, uid, "x", 7)
        msg = await ws.next()
        assert msg == {
            "type": "change", "sub": "at-loc", "sku": "x", "location": uid, "on_hand": 7,
            "reserved": 0, "safety_stock": 0, "available": 7, "status": "in_stock",
            "unsellable": 0, "incoming": 0,
            "version": pos["version"], "reason": "count", "cursor": msg["cursor"], "ts": msg["ts"],
        }  # fmt: skip
        assert RFC3339.match(msg["ts"]) and msg["ts"] == pos["updated_at"]
        assert len(cursor.decode(msg["cursor"], 64)) == 64
        # Same location, so same partition stream: "probe" is read after "x". Had "other-sku"
        # wrongly matched "x", that message would come before the probe's.
        await set_on_hand(admin, uid, "probe", 1)
        rest = await ws.until(lambda m: change_of(m, "other-sku", "probe"))
        assert [(m["sub"], m["sku"]) for m in rest] in (
            [("at-loc", "probe"), ("other-sku", "probe")],
            [("other-sku", "probe")],  # "at-loc"'s copy may come right after
        )


async def test_reservations_are_position_changes_only(
    app: AppServer, admin: httpx.AsyncClient, uid: str
) -> None:
    await put_location(admin, uid)
    await stock(admin, uid, s=5)
    async with stream(app) as ws:
        await ws.subscribe("s", locations=[uid])
        held = await admin.post(
            "/v1/reservations", json={"location": uid, "lines": [{"sku": "s", "qty": 2}]}
        )
        assert held.status_code == 201
        msg = await ws.next()
        assert (msg["type"], msg["sku"], msg["on_hand"], msg["reserved"], msg["available"]) == (
            "change", "s", 5, 2, 3,
        )  # fmt: skip
        assert msg["reason"] == "reserve"


async def test_status_only_sends_status_changes(
    app: AppServer, admin: httpx.AsyncClient, uid: str
) -> None:
    await put_location(admin, uid, limited_threshold=2)
    async with stream(app) as ws:
        await ws.subscribe("all", locations=[uid])
        await ws.subscribe("status", locations=[uid], status_only=True)
        statuses = []
        for on_hand in (10, 9, 8, 2, 1, 0, 0, 5):  # the second 0 changes nothing at all
            statuses.append((await set_on_hand(admin, uid, "s", on_hand))["status"])
        last = (await set_on_hand(admin, uid, "s", 1))["version"]  # in_stock -> limited
        got = await ws.until(lambda m: m["sub"] == "status" and m["version"] == last)
        status_msgs = [(m["on_hand"], m["status"]) for m in got if m["sub"] == "status"]
        assert status_msgs == [(10, "in_stock"), (2, "limited"), (0, "out_of_stock"), (5, "in_stock"), (1, "limited")]  # fmt: skip
        everything = [m["on_hand"] for m in got if m["sub"] == "all"]
        assert everything[:7] == [10, 9, 8, 2, 1, 0, 5]


async def test_groups_follow_location_membership(
    app: AppServer, admin: httpx.AsyncClient, uid: str
) -> None:
    group = f"{uid}-g"
    await put_location(admin, uid, groups=[])
    async with stream(app) as ws:
        await ws.subscribe("group", groups=[group])
        await ws.subscribe("probe", locations=[uid], skus=["probe"])

        probes = iter(range(1, 100))

        async def group_saw(sku: str) -> bool:
            """Change ``sku`` then the probe (same partition, read after it): did "group" get
            ``sku``?"""
            await set_on_hand(admin, uid, sku, 3)
            await set_on_hand(admin, uid, "probe", next(probes))
            got = await ws.until(lambda m: change_of(m, "probe", "probe"))
            return any(change_of(m, "group", sku) for m in got)

        assert not await group_saw("before")
        await put_location(admin, uid, groups=[group, "other"])
        assert await group_saw("member")
        await put_location(admin, uid, groups=["other"])
        assert not await group_saw("left")


async def test_location_made_on_another_instance_is_grouped(
    app: AppServer, other_app: AppServer, admin: httpx.AsyncClient, uid: str
) -> None:
    """Changes arrive before the location cache hears of the new location: the reader looks it
    up, so group subscribers still get them."""
    group = f"{uid}-g"
    async with stream(app) as ws:
        await ws.subscribe("group", groups=[group])
        async with httpx.AsyncClient(base_url=other_app.url, headers=admin.headers) as other:
            await put_location(other, uid, groups=[group])
            await set_on_hand(other, uid, "s", 4)
        msg = await ws.next()
        assert (msg["sub"], msg["location"], msg["on_hand"]) == ("group", uid, 4)


async def test_filters_combine(app: AppServer, admin: httpx.AsyncClient, uid: str) -> None:
    a, b = f"{uid}-a", f"{uid}-b"
    await put_location(admin, a, groups=[f"{uid}-g"])
    await put_location(admin, b)
    async with stream(app) as ws:
        # skus AND (locations OR groups)
        await ws.subscribe("f", skus=["x"], locations=[b], groups=[f"{uid}-g"])
        await ws.subscribe("sku", skus=[f"{uid}-only"])
        for loc in (a, b):
            for sku in ("y", "x"):
                await set_on_hand(admin, loc, sku, 1)
        await set_on_hand(admin, a, f"{uid}-only", 2)
        got = await ws.until(lambda m: m["sub"] == "sku")
        assert sorted((m["location"], m["sku"]) for m in got if m["sub"] == "f") == [(a, "x"), (b, "x")]  # fmt: skip
        assert got[-1]["on_hand"] == 2


async def test_unsubscribe_stops_delivery(
    app: AppServer, admin: httpx.AsyncClient, uid: str
) -> None:
    await put_location(admin, uid)
    async with stream(app) as ws:
        await ws.subscribe("gone", locations=[uid])
        await ws.subscribe("stays", locations=[uid], skus=["probe"])
        await ws.send(op="unsubscribe", id="gone")
        await set_on_hand(admin, uid, "x", 1)
        await set_on_hand(admin, uid, "probe", 1)
        got = await ws.until(lambda m: change_of(m, "stays", "probe"))
        assert [m["sub"] for m in got] == ["stays"]
        await ws.send(op="unsubscribe", id="gone")
        assert await ws.next() == {
            "type": "error",
            "detail": "no subscription with id 'gone'",
            "id": "gone",
        }


async def test_firehose_needs_a_firehose_role(
    app: AppServer, client_for: KeyMaker, admin: httpx.AsyncClient, uid: str
) -> None:
    await put_location(admin, uid)
    for on_hand, (role, allowed) in enumerate(
        (("store", False), ("storefront", False), ("feed", True)), start=1
    ):
        client = await client_for(role, locations=[uid])
        key = client.headers["authorization"].split()[1]
        async with stream(app, key, query_key=role == "feed") as ws:
            if allowed:
                await ws.subscribe("all")
            else:
                await ws.send(op="subscribe", id="all")
                msg = await ws.next()
                assert (msg["type"], msg["id"]) == ("error", "all")
                assert "admin, integration or feed" in msg["detail"]
            await ws.subscribe("mine", locations=[uid])  # still open; filtered is fine
            await set_on_hand(admin, uid, "x", on_hand)
            got = await ws.until(lambda m: m["type"] == "change" and m["sub"] == "mine")
            assert got[-1]["on_hand"] == on_hand


@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        ("{nope", "malformed JSON"),
        ("[1, 2]", "Expected `object`"),
        ('{"op": "publish", "id": "s"}', "op: must be 'subscribe' or 'unsubscribe'"),
        ('{"id": "s"}', "missing required field `op`"),
        ('{"op": "subscribe"}', "missing required field `id`"),
        ('{"op": "subscribe", "id": "bad id"}', "id: Expected `str` matching regex"),
        ('{"op": "subscribe", "id": "s", "skus": ["ok", "no/slash"]}', "skus[1]: Expected"),
        ('{"op": "subscribe", "id": "s", "locations": "L1"}', "locations: Expected `array"),
        ('{"op": "subscribe", "id": "s", "groups": [""]}', "groups[0]: Expected"),
        ('{"op": "subscribe", "id": "s", "skus": ["a"], "status_only": "yes"}', "status_only"),
        ('{"op": "subscribe", "id": "s", "skus": ["a"], "since": "%%%"}', "since: not a cursor"),
        ('{"op": "subscribe", "id": "s", "skus": ["a"], "since": "AQI"}', "since: cursor has"),
        ('{"op": "subscribe", "id": "s", "skus": ["a"], "since": 5}', "since: Expected"),
        ('{"op": "unsubscribe", "id": "never"}', "no subscription with id 'never'"),
    ],
)
async def test_bad_messages_get_errors_and_keep_the_connection(
    app: AppServer, admin: httpx.AsyncClient, uid: str, raw: str, detail: str
) -> None:
    async with stream(app) as ws:
        await ws.send_raw(raw)
        msg = await ws.next()
        assert msg["type"] == "error" and detail in msg["detail"], msg
        await put_location(admin, uid)
        await ws.subscribe("after", locations=[uid])
        await set_on_hand(admin, uid, "x", 3)
        assert (await ws.next())["on_hand"] == 3


async def test_subscription_limits(app: AppServer, uid: str) -> None:
    async with stream(app) as ws:
        await ws.subscribe("s0", locations=[uid])
        await ws.send(op="subscribe", id="s0", skus=["x"])
        assert await ws.next() == {
            "type": "error",
            "detail": "subscription id 's0' is already in use on this connection",
            "id": "s0",
        }
        for n in range(1, 100):
            await ws.subscribe(f"s{n}", skus=[f"{uid}-{n}"])
        await ws.send(op="subscribe", id="s100", skus=["x"])
        msg = await ws.next()
        assert msg["detail"] == "too many subscriptions: at most 100 per connection"
        await ws.send(op="unsubscribe", id="s7")
        await ws.subscribe("s100", skus=["x"])


async def test_stream_auth(app: AppServer, client_for: KeyMaker, uid: str) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}):
        with pytest.raises(InvalidStatus) as refused:
            async with stream_raw(app, headers):
                pass
        assert refused.value.response.status_code == 401
        body = json.loads(refused.value.response.body or b"{}")
        assert body["status"] == 401 and body["title"]
    client = await client_for("storefront")
    key = client.headers["authorization"].split()[1]
    for query_key in (True, False):
        async with stream(app, key, query_key=query_key) as ws:
            await ws.subscribe("s", skus=[uid])
    with pytest.raises(InvalidStatus) as refused:
        async with stream_raw(app, {}, "?api_key=wrong"):
            pass
    assert refused.value.response.status_code == 401


def stream_raw(app: AppServer, headers: dict[str, str], query: str = "") -> Any:
    return connect(ws_url(app) + query, additional_headers=headers)
