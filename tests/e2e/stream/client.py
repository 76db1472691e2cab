"""A small WebSocket client for the stream tests, and access to an in-process app's fan-out."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import redis.asyncio as aredis
from websockets.asyncio.client import ClientConnection, connect

from omnistock.redis import keys
from omnistock.services import Services
from omnistock.stream.connection import Connection
from omnistock.stream.fanout import Fanout
from tests.e2e.conftest import ADMIN_KEY, AppServer
from tests.events import event_fields

Message = dict[str, Any]


def ws_url(app: AppServer) -> str:
    return app.url.replace("http://", "ws://") + "/v1/stream"


def fanout_of(app: AppServer) -> Fanout:
    services: Services = app.server.config.app.state.services
    return services.fanout


def server_side(app: AppServer, sub_id: str) -> Connection:
    """The server's connection object holding subscription ``sub_id``."""
    for conn in fanout_of(app).connections:
        if sub_id in conn.subs:
            return conn
    raise AssertionError(f"no connection holds subscription {sub_id!r}")


class StreamClient:
    """Sends ops and reads messages; heartbeats are kept apart from the rest."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.heartbeats: list[Message] = []

    async def send(self, **op: Any) -> None:
        await self.ws.send(json.dumps(op))

    async def send_raw(self, raw: str) -> None:
        await self.ws.send(raw)

    async def next(self, wait: float = 5.0) -> Message:
        """The next message other than a heartbeat (at most ``wait`` seconds away)."""
        while True:
            msg: Message = json.loads(await asyncio.wait_for(self.ws.recv(), wait))
            if msg["type"] != "heartbeat":
                return msg
            self.heartbeats.append(msg)

    async def until(self, done: Callable[[Message], bool], wait: float = 10.0) -> list[Message]:
        """Messages (no heartbeats) up to and including the first for which ``done`` holds."""
        found: list[Message] = []
        async with asyncio.timeout(wait):
            while True:
                found.append(await self.next(wait))
                if done(found[-1]):
                    return found

    async def subscribe(self, sub_id: str, **fields: Any) -> Message:
        await self.send(op="subscribe", id=sub_id, **fields)
        msg = await self.next()
        assert msg == {"type": "subscribed", "id": sub_id, "cursor": msg.get("cursor")}, msg
        assert isinstance(msg["cursor"], str) and msg["cursor"]
        return msg


@contextlib.asynccontextmanager
async def stream(
    app: AppServer,
    key: str = ADMIN_KEY,
    *,
    query_key: bool = False,
    frozen: bool = False,
) -> AsyncIterator[StreamClient]:
    """A connected client. ``frozen``: tiny receive buffers, so once it stops reading the server
    soon cannot send to it any more (a stalled client)."""
    url = ws_url(app) + (f"?api_key={key}" if query_key else "")
    headers = None if query_key else {"Authorization": f"Bearer {key}"}
    sock = None
    if frozen:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", app.port))
    async with connect(
        url,
        additional_headers=headers,
        sock=sock,
        # A live client's library reads everything in the background, even while the test is
        # busy elsewhere; a frozen one stops reading at once.
        max_queue=1 if frozen else None,
        max_size=None,
        ping_interval=None,
        close_timeout=1,
        # Uncompressed, so the buffers fill at the messages' real size.
        compression=None if frozen else "deflate",
    ) as ws:
        yield StreamClient(ws)


def change_of(msg: Message, sub: str, sku: str) -> bool:
    return msg["type"] == "change" and msg["sub"] == sub and msg["sku"] == sku


async def set_on_hand(admin: httpx.AsyncClient, loc: str, sku: str, on_hand: int) -> dict[str, Any]:
    """A cycle count through HTTP (an event only when ``on_hand`` changes); the position."""
    resp = await admin.put(f"/v1/stock/{loc}/{sku}", json={"on_hand": on_hand})
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


async def wait_persisted(redis: aredis.Redis, stream_key: str) -> None:
    """The persister group has acknowledged everything in the stream (so trimming is safe)."""
    async with asyncio.timeout(10):
        while True:
            groups = await redis.xinfo_groups(stream_key)
            group = next(g for g in groups if g["name"] == keys.PERSISTER_GROUP.encode())
            if group["pending"] == 0 and group["lag"] == 0:
                return
            await asyncio.sleep(0.05)


async def entry_id(redis: aredis.Redis, stream_key: str, loc: str, sku: str, version: int) -> bytes:
    for found, fields in await redis.xrevrange(stream_key, count=200):
        event = event_fields(fields)
        if (event.get("loc"), event.get("sku"), event.get("v")) == (loc, sku, str(version)):
            return bytes(found)
    raise AssertionError("event not found")
