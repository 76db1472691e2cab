"""WebSocket limits (defect 6), each a setting: message size, subscriptions and filter entries
per subscription and per connection (an ``error`` message, the connection stays open),
connections per API key and per process (closed with 4429 / 1013), and how far back a ``since``
replays (past it: ``resync``). The instance under test has small limits (``LIMITS``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from omnistock.api.stream import _size
from omnistock.stream import cursor
from tests.conftest import Servers
from tests.e2e.conftest import ADMIN_KEY, AppServer, put_location
from tests.e2e.stream.client import StreamClient, change_of, fanout_of, set_on_hand, stream
from tests.e2e.stream.conftest import LIMITS
from tests.e2e.stream.served import served

TOO_MANY_FOR_KEY = 4429
TRY_AGAIN_LATER = 1013


async def new_key(admin: httpx.AsyncClient) -> str:
    made = await admin.post("/v1/keys", json={"name": "limits", "role": "storefront"})
    assert made.status_code == 201, made.text
    return str(made.json()["key"])


async def fewer_connections(app: AppServer, than: int = 1) -> None:
    """Wait until the server has let go of sockets closed by the client."""
    async with asyncio.timeout(10):
        while True:
            if len(fanout_of(app).connections) < than:
                return
            await asyncio.sleep(0.02)


@pytest.fixture(autouse=True)
async def _fresh(limited_app: AppServer) -> None:
    await fewer_connections(limited_app)  # earlier tests' sockets are gone


async def close_code(ws: StreamClient, wait: float) -> int | None:
    """The close code the server sends within ``wait`` seconds; None if it keeps the socket."""
    with contextlib.suppress(ConnectionClosed, TimeoutError):
        async with asyncio.timeout(wait):
            while True:
                await ws.ws.recv()
    return ws.ws.close_code


async def error_for(ws: StreamClient, **op: object) -> str:
    await ws.send(**op)
    msg = await ws.next()
    assert msg["type"] == "error", msg
    return str(msg["detail"])


def skus(n: int, prefix: str = "k") -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


async def test_message_size(limited_app: AppServer) -> None:
    most = LIMITS["ws_max_message_bytes"]
    body = '{"op":"subscribe","id":"%s","skus":["%s"]}'
    room = most - len(body % ("s", ""))
    async with stream(limited_app) as ws:
        detail = await error_for(ws, op="subscribe", id="big", skus=["x" * most])
        assert detail == f"message larger than {most} bytes (ws_max_message_bytes)"
        # Counted in bytes: 'é' is two, so this is one byte over in fewer characters.
        over = body % ("s", "é" * (room // 2) + "x" * (room % 2 + 1))
        assert len(over.encode()) == most + 1 and len(over) < most
        await ws.send_raw(over)
        assert (await ws.next()) == {"type": "error", "detail": detail}
        exact = body % ("s", "x") + " " * (room - 1)  # JSON allows the padding
        assert len(exact.encode()) == most
        await ws.send_raw(exact)
        assert (await ws.next())["type"] == "subscribed"  # at the limit: fine
        await ws.subscribe("after", skus=["y"])  # the connection stayed open
    assert _size("é" * 10, 19) == 20
    assert _size("é" * 50, 10) == 50  # past the limit in characters: not encoded


async def test_subscriptions_per_connection(limited_app: AppServer) -> None:
    most = LIMITS["ws_max_subscriptions"]
    async with stream(limited_app) as ws:
        for n in range(most):
            await ws.subscribe(f"s{n}", skus=[f"x{n}"])
        detail = await error_for(ws, op="subscribe", id="one-more", skus=["x"])
        assert detail == f"too many subscriptions: at most {most} per connection"
        await ws.send(op="unsubscribe", id="s0")
        await ws.subscribe("one-more", skus=["x"])


async def test_filter_entries_per_subscription_and_connection(limited_app: AppServer) -> None:
    per_sub = LIMITS["ws_max_filter_entries"]
    per_conn = LIMITS["ws_max_connection_filter_entries"]
    async with stream(limited_app) as ws:
        detail = await error_for(
            ws, op="subscribe", id="a", skus=skus(per_sub - 10), locations=skus(6), groups=skus(5)
        )
        assert detail == (
            f"too many filter entries: {per_sub + 1} skus, locations and groups; "
            f"at most {per_sub} per subscription"
        )
        await ws.subscribe("a", skus=skus(per_sub - 10), locations=skus(5), groups=skus(5))
        await ws.subscribe("b", skus=skus(per_sub, "b"))
        left = per_conn - 2 * per_sub
        detail = await error_for(ws, op="subscribe", id="c", skus=skus(left + 1, "c"))
        assert detail == (
            f"too many filter entries: this connection holds {2 * per_sub}, "
            f"{left + 1} more would pass the limit of {per_conn} per connection"
        )
        await ws.subscribe("c", skus=skus(left, "c"))
        conn = next(c for c in fanout_of(limited_app).connections if "c" in c.subs)
        assert conn.filter_entries == per_conn
        await ws.send(op="unsubscribe", id="b")  # gives its entries back
        await ws.subscribe("d", skus=skus(per_sub, "d"))
        assert conn.filter_entries == per_conn


async def test_connections_per_key_under_a_burst(
    limited_app: AppServer, admin: httpx.AsyncClient
) -> None:
    """20 sockets of one key at once: exactly the limit stays open, the rest are closed 4429."""
    most = LIMITS["ws_max_connections_per_key"]
    key = await new_key(admin)
    async with contextlib.AsyncExitStack() as stack:
        clients = await asyncio.gather(
            *(stack.enter_async_context(stream(limited_app, key)) for _ in range(20))
        )
        codes = await asyncio.gather(*(close_code(ws, 1.5) for ws in clients))
        assert Counter(codes) == {None: most, TOO_MANY_FOR_KEY: 20 - most}
        refused = next(ws for ws, code in zip(clients, codes, strict=True) if code)
        assert refused.ws.close_reason == (
            f"too many connections: at most {most} per API key and process"
        )
        kept = [ws for ws, code in zip(clients, codes, strict=True) if code is None]
        for n, ws in enumerate(kept):
            await ws.subscribe("s", skus=[f"x{n}"])  # the ones kept work
        await kept[0].ws.close()
        # Room again once the server has let one go.
        await fewer_connections(limited_app, most)
        async with stream(limited_app, key) as again:
            await again.subscribe("s", skus=["x"])


async def test_connections_per_process_under_a_burst(
    limited_app: AppServer, admin: httpx.AsyncClient
) -> None:
    """Four keys open four sockets each, all at once: exactly the process limit stays open,
    none of its keys over the per-key limit; the rest are closed with 1013 or 4429."""
    most = LIMITS["ws_max_connections"]
    per_key = LIMITS["ws_max_connections_per_key"]
    keys = [await new_key(admin) for _ in range(4)]
    attempts = [key for key in keys for _ in range(4)]
    async with contextlib.AsyncExitStack() as stack:
        clients = await asyncio.gather(
            *(stack.enter_async_context(stream(limited_app, key)) for key in attempts)
        )
        codes = await asyncio.gather(*(close_code(ws, 1.5) for ws in clients))
        assert codes.count(None) == most
        assert set(codes) <= {None, TRY_AGAIN_LATER, TOO_MANY_FOR_KEY}
        assert TRY_AGAIN_LATER in codes
        open_per_key = Counter(k for k, c in zip(attempts, codes, strict=True) if c is None)
        assert max(open_per_key.values()) <= per_key
        assert len(fanout_of(limited_app).connections) == most
        refused = next(ws for ws, c in zip(clients, codes, strict=True) if c == TRY_AGAIN_LATER)
        assert refused.ws.close_reason == (
            f"too many connections: at most {most} per server process"
        )


async def test_since_replays_at_most_the_limit_then_resyncs(
    limited_app: AppServer, admin: httpx.AsyncClient, uid: str
) -> None:
    """A filtered subscription asking for more than ``ws_max_replay_entries`` stream entries
    gets ``resync`` after scanning that many, then follows live; one within it replays."""
    most = LIMITS["ws_max_replay_entries"]
    await put_location(admin, uid)
    async with stream(limited_app) as ws:
        start = (await ws.subscribe("mark", skus=["none"]))["cursor"]
        # All at one location: one partition, more entries than the limit.
        for n in range(most + 20):
            await set_on_hand(admin, uid, "noise", n + 1)
        await set_on_hand(admin, uid, "wanted", 5)
        await ws.send(op="subscribe", id="far", skus=["wanted"], since=start)
        got = await ws.until(lambda m: m.get("type") == "resync")
        assert [m["type"] for m in got] == ["subscribed", "resync"]
        assert got[1] == {"type": "resync", "sub": "far"}
        near = (await ws.subscribe("mark2", skus=["none"]))["cursor"]
        await set_on_hand(admin, uid, "wanted", 6)
        await ws.send(op="subscribe", id="near", skus=["wanted"], since=near)
        got = await ws.until(lambda m: change_of(m, "near", "wanted"))
        assert [m["type"] for m in got if m.get("sub") == "near" or m.get("id") == "near"] == [
            "subscribed",
            "change",
        ]
        assert got[-1]["on_hand"] == 6
        # "far" follows live after its resync.
        await set_on_hand(admin, uid, "wanted", 7)
        live = await ws.until(lambda m: change_of(m, "far", "wanted") and m["on_hand"] == 7)
        assert live[-1]["sub"] == "far"


async def test_an_all_zero_cursor_does_not_replay_the_retained_stream(
    limited_app: AppServer, admin: httpx.AsyncClient, uid: str
) -> None:
    await put_location(admin, uid)
    for n in range(LIMITS["ws_max_replay_entries"] + 1):
        await set_on_hand(admin, uid, "z", n + 1)
    zero = cursor.encode([0] * limited_app.settings.partitions)
    async with stream(limited_app) as ws:
        await ws.send(op="subscribe", id="all", skus=["z"], since=zero)
        got = await ws.until(lambda m: m.get("type") == "resync")
        assert got[0] == {"type": "subscribed", "id": "all", "cursor": got[0]["cursor"]}
        assert got[-1] == {"type": "resync", "sub": "all"}
        replayed = got[1:-1]
        assert all(change_of(m, "all", "z") for m in replayed)
        # 101 changes of "z" are retained; at most the limit of entries was scanned.
        assert len(replayed) <= LIMITS["ws_max_replay_entries"]
        await set_on_hand(admin, uid, "z", 1000)  # then it follows live
        await ws.until(lambda m: change_of(m, "all", "z") and m["on_hand"] == 1000)


async def test_filter_entries_per_key_across_its_connections(
    limited_app: AppServer, admin: httpx.AsyncClient
) -> None:
    per_key = LIMITS["ws_max_key_filter_entries"]
    per_conn = LIMITS["ws_max_connection_filter_entries"]
    key = await new_key(admin)
    fanout = fanout_of(limited_app)
    async with stream(limited_app, key) as first:
        await first.subscribe("a", skus=skus(50))
        await first.subscribe("b", skus=skus(50, "b"))
        await first.subscribe("c", skus=skus(per_conn - 100, "c"))
        async with stream(limited_app, key) as second:
            left = per_key - per_conn  # 80: two subscriptions of at most 50
            await second.subscribe("a", skus=skus(50))
            await second.subscribe("b", skus=skus(left - 50, "b"))
            detail = await error_for(second, op="subscribe", id="c", skus=["one-more"])
            assert detail == (
                f"too many filter entries: this API key holds {per_key} on this server "
                f"process, 1 more would pass the limit of {per_key}"
            )
        await fewer_connections(limited_app, 2)
        conn = next(iter(fanout.connections))
        assert fanout.key_entries[conn.principal.id] == per_conn  # the second gave its back
    await fewer_connections(limited_app)
    assert conn.principal.id not in fanout.key_entries


async def test_concurrent_subscribes_of_one_key_never_pass_its_budget(
    limited_app: AppServer, admin: httpx.AsyncClient
) -> None:
    """Three sockets of one key each fire four 50-entry subscribes at once: the key's budget
    (200) admits exactly four of the twelve, whatever the interleaving."""
    per_key = LIMITS["ws_max_key_filter_entries"]
    key = await new_key(admin)
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(stream(limited_app, key)) for _ in range(3)]

        async def fire(n: int, ws: StreamClient) -> list[str]:
            for i in range(4):
                await ws.send(op="subscribe", id=f"s{i}", skus=skus(50, f"c{n}-{i}-"))
            return [(await ws.next())["type"] for _ in range(4)]

        outcomes = await asyncio.gather(*(fire(n, ws) for n, ws in enumerate(clients)))
        kinds = Counter(kind for found in outcomes for kind in found)
        assert kinds == {"subscribed": per_key // 50, "error": 12 - per_key // 50}
        conn = next(iter(fanout_of(limited_app).connections))
        assert fanout_of(limited_app).key_entries[conn.principal.id] == per_key
        assert sum(c.filter_entries for c in fanout_of(limited_app).connections) == per_key


async def test_served_process_cuts_messages_past_twice_the_limit(
    servers: Servers, tmp_path: Path
) -> None:
    """``omnistock serve`` sets the protocol's own frame limit to twice the message limit: a
    larger message is never buffered whole, the socket is closed with 1009."""
    async with served(servers, tmp_path / "serve.log", ws_max_message_bytes="1024") as app:
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        async with connect(app.ws_url, additional_headers=headers) as ws:
            await ws.send(json.dumps({"op": "subscribe", "id": "s", "skus": ["x" * 1100]}))
            assert json.loads(await ws.recv())["detail"] == (
                "message larger than 1024 bytes (ws_max_message_bytes)"
            )
            await ws.send("x" * 2049)
            assert await close_code(StreamClient(ws), 5.0) == 1009
