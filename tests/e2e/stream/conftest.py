"""More app instances for the stream tests, with small socket send buffers.

Linux grows a socket's send buffer to megabytes on loopback, so a client that stops reading
would take a long burst before the server notices. These instances listen on a socket with a
fixed small SO_SNDBUF (inherited by accepted connections): a frozen client blocks the server's
sends after some tens of kilobytes, as a slow client over a real network would.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conftest import Servers
from tests.e2e.conftest import AppServer, app_settings

SEND_BUFFER = 16 * 1024


class SmallBufferAppServer(AppServer):
    async def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        sock.bind(("127.0.0.1", self.port))
        self.task = asyncio.create_task(self.server.serve(sockets=[sock]))
        while not self.server.started:
            if self.task.done():
                self.task.result()
            await asyncio.sleep(0.02)


async def _serving(settings: Any) -> AsyncIterator[AppServer]:
    server = SmallBufferAppServer(settings)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(scope="package")
async def other_app(servers: Servers, app: AppServer) -> AsyncIterator[AppServer]:
    """A second instance with default settings."""
    async for server in _serving(app_settings(servers)):
        yield server


@pytest.fixture(scope="package")
async def quick_app(servers: Servers, app: AppServer) -> AsyncIterator[AppServer]:
    """An instance with quick heartbeats, a 1 s stall limit and a 200-message outbox."""
    settings = app_settings(
        servers, heartbeat_seconds=0.2, ws_stall_seconds=1.0, ws_outbox_limit=200
    )
    async for server in _serving(settings):
        yield server


LIMITS = {
    "ws_max_message_bytes": 4096,
    "ws_max_subscriptions": 4,
    "ws_max_filter_entries": 50,
    "ws_max_connection_filter_entries": 120,
    "ws_max_key_filter_entries": 200,
    "ws_max_connections_per_key": 3,
    "ws_max_connections": 5,
    "ws_max_replay_entries": 100,
}


@pytest.fixture(scope="package")
async def limited_app(servers: Servers, app: AppServer) -> AsyncIterator[AppServer]:
    """An instance with small WebSocket limits (``LIMITS``)."""
    async for server in _serving(app_settings(servers, **LIMITS)):
        yield server
