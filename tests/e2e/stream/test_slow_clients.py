"""Slow and frozen clients: conflation to the latest state in bounded memory, disconnection with
a reason when stalled or over the bound, and other clients unaffected. Also: several instances
and heartbeats."""

from __future__ import annotations

import asyncio
import json

import httpx
from websockets.exceptions import ConnectionClosed

from omnistock.stream import cursor
from omnistock.stream.connection import Connection
from tests.e2e.conftest import AppServer, put_location
from tests.e2e.stream.client import (
    Message,
    StreamClient,
    fanout_of,
    server_side,
    set_on_hand,
    stream,
)

SKUS = [f"s{n}" for n in range(10)]


async def burst(
    admin: httpx.AsyncClient, loc: str, changes: int, skus: list[str], per_request: int = 1000
) -> None:
    """``changes`` receipts spread over ``skus``, ``per_request`` per request, 4 requests at a
    time (small requests make many separate events for the reader, not a few big batches)."""
    starts = list(range(0, changes, per_request))

    async def send(start: int) -> None:
        items = [
            {"sku": skus[n % len(skus)], "location": loc, "delta": 1, "reason": "receipt"}
            for n in range(start, min(changes, start + per_request))
        ]
        resp = await admin.post("/v1/adjustments", json={"adjustments": items})
        assert resp.status_code == 200, resp.text

    for at in range(0, len(starts), 4):
        await asyncio.gather(*(send(start) for start in starts[at : at + 4]))


async def killed(conn: Connection) -> str:
    """Wait (at most 5 s) for the server to drop ``conn``; its reason."""
    await asyncio.wait_for(conn.closed.wait(), 5)
    assert conn.close_reason is not None
    return conn.close_reason


async def drain(ws: StreamClient) -> ConnectionClosed:
    """Read everything left until the server's close."""
    try:
        while True:
            await ws.ws.recv()
    except ConnectionClosed as closed:
        return closed


async def final_versions(admin: httpx.AsyncClient, loc: str, skus: list[str]) -> dict[str, int]:
    return {s: (await admin.get(f"/v1/stock/{loc}/{s}")).json()["version"] for s in skus}


async def read_latest(ws: StreamClient, sub: str, want: dict[str, int]) -> dict[str, Message]:
    """Read until the latest version of every sku in ``want`` has arrived."""
    latest: dict[str, Message] = {}

    def done(msg: Message) -> bool:
        if msg["type"] == "change" and msg["sub"] == sub:
            latest[msg["sku"]] = msg
        return all(s in latest and latest[s]["version"] == v for s, v in want.items())

    await ws.until(done, wait=30)
    return latest


async def test_slow_client_gets_latest_states_in_bounded_memory(
    other_app: AppServer, admin: httpx.AsyncClient, uid: str
) -> None:
    await put_location(admin, uid)
    async with stream(other_app, frozen=True) as ws:
        await ws.subscribe("slow", locations=[uid])
        conn = server_side(other_app, "slow")
        await burst(admin, uid, 10_000, SKUS, 100)  # the client reads nothing meanwhile
        want = await final_versions(admin, uid, SKUS)
        assert set(want.values()) == {1000}
        await asyncio.sleep(0.2)  # let the reader catch up with the last request
        assert conn.close_reason is None
        assert conn.sending_since > 0  # the client really is not reading: a send is stuck
        # The server held at most one pending message per position (plus a heartbeat).
        assert conn.peak <= len(SKUS) + 1
        # Every change was sent, is pending, or was replaced by a newer one (conflated); the
        # client's buffers took a few hundred, so nearly all were conflated.
        assert conn.conflated >= 10_000 - conn.sent - len(conn) - 1
        assert conn.sent < 1000
        latest = await read_latest(ws, "slow", want)
        states = {s: (m["on_hand"], m["available"]) for s, m in latest.items()}
        assert states == dict.fromkeys(SKUS, (1000, 1000))


async def test_stalled_client_is_dropped_and_others_are_not_delayed(
    quick_app: AppServer, admin: httpx.AsyncClient, uid: str
) -> None:
    await put_location(admin, uid)
    async with stream(quick_app, frozen=True) as frozen, stream(quick_app) as live:
        await frozen.subscribe("frozen", locations=[uid])
        await live.subscribe("live", locations=[uid])
        conn = server_side(quick_app, "frozen")
        await burst(admin, uid, 5000, SKUS, 100)
        want = await final_versions(admin, uid, SKUS)
        # The live client gets everything; the frozen one is stuck in a send meanwhile (and is
        # dropped once that lasts a second).
        await read_latest(live, "live", want)
        assert conn.sending_since > 0
        reason = await killed(conn)
        assert reason.startswith("stalled")
        assert len(conn) == 0  # its outbox is freed at once
        closed = await drain(frozen)
        assert closed.rcvd is not None
        assert (closed.rcvd.code, closed.rcvd.reason) == (1008, reason)
        assert conn not in fanout_of(quick_app).connections
        # The live client carries on.
        pos = await set_on_hand(admin, uid, "after", 1)
        assert (await live.next())["version"] == pos["version"]


async def test_client_over_the_outbox_bound_is_dropped(
    quick_app: AppServer, admin: httpx.AsyncClient, uid: str
) -> None:
    await put_location(admin, uid)
    async with stream(quick_app, frozen=True) as ws:
        await ws.subscribe("many", locations=[uid])
        conn = server_side(quick_app, "many")
        # 1,000 distinct positions at once: more than the 200 messages a client may have pending.
        await burst(admin, uid, 1000, [f"p{n}" for n in range(1000)])
        reason = await killed(conn)
        assert reason.startswith("too slow")
        assert len(conn) == 0
        closed = await drain(ws)
        assert closed.rcvd is not None
        assert (closed.rcvd.code, closed.rcvd.reason) == (1008, reason)


async def test_change_through_one_instance_reaches_another(
    app: AppServer, other_app: AppServer, admin: httpx.AsyncClient, uid: str
) -> None:
    await put_location(admin, uid)
    async with stream(other_app) as on_b:
        await on_b.subscribe("b", locations=[uid])
        pos = await set_on_hand(admin, uid, "x", 6)  # through the first instance
        msg = await on_b.next()
        assert (msg["sub"], msg["sku"], msg["on_hand"], msg["version"]) == (
            "b", "x", 6, pos["version"],
        )  # fmt: skip


async def test_heartbeats_carry_a_cursor(quick_app: AppServer, uid: str) -> None:
    async with stream(quick_app) as ws:
        await ws.subscribe("s", skus=[uid])
        beats = [json.loads(await asyncio.wait_for(ws.ws.recv(), 2)) for _ in range(3)]
    assert [b["type"] for b in beats] == ["heartbeat"] * 3
    assert all(len(cursor.decode(b["cursor"], 64)) == 64 for b in beats)
