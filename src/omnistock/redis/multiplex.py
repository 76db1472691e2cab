"""One pipelined Redis connection that every request of a process shares (the hot path).

Commands from concurrent requests are packed by hiredis, written together once per event-loop
turn and answered in order by the one connection: Redis runs them back to back, the process makes
one write per turn instead of one per command, and no pool bookkeeping runs per command (redis-py
spent about a third of a read's CPU there). Only short commands belong here (single reads,
reservation scripts); bulk and blocking commands keep redis-py's pool so that they cannot hold up a
storefront read behind them.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections import deque
from collections.abc import Sequence
from typing import Any, cast

import hiredis
from redis._parsers.base import BaseParser
from redis.asyncio.connection import SSLConnection, UnixDomainSocketConnection, parse_url
from redis.exceptions import ConnectionError as RedisConnectionError

NAME = "omnistock-hot"  # CLIENT LIST shows the connection under this name


def pack(name: str, *args: str) -> tuple[bytes, bytes]:
    """RESP of ``name key *args`` split around the key: (head, tail), the key goes between as
    ``b"$%d\\r\\n%b\\r\\n" % (len(key), key)`` (see ``execute_packed``)."""
    head = b"*%d\r\n$%d\r\n%b\r\n" % (len(args) + 2, len(name), name.encode())
    tail = b"".join(b"$%d\r\n%b\r\n" % (len(a.encode()), a.encode()) for a in args)
    return head, tail


class _Batch:
    """Several commands sent together and answered by one future: their replies in order (a
    large batch, e.g. a sourcing plan's hundreds of reads, costs one future instead of one per
    command). An error reply fails the batch once every reply has arrived."""

    __slots__ = ("error", "future", "replies", "size")

    def __init__(self, future: asyncio.Future[Any], size: int) -> None:
        self.future, self.size = future, size
        self.replies: list[Any] = []
        self.error: BaseException | None = None

    def done(self) -> bool:
        return self.future.done()

    def take(self, reply: Any) -> bool:
        """Add one reply; True once the batch is complete (and its future resolved)."""
        if isinstance(reply, hiredis.ReplyError) and self.error is None:
            self.error = BaseParser.parse_error(str(reply))  # type: ignore[no-untyped-call]
        self.replies.append(reply)
        if len(self.replies) < self.size:
            return False
        if not self.future.done():
            if self.error is not None:
                self.future.set_exception(self.error)
            else:
                self.future.set_result(self.replies)
        return True


class _Connection(asyncio.Protocol):
    """The protocol side: replies are matched to the waiting futures (or batches) in the order
    sent."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.reader = hiredis.Reader()
        self.waiting: deque[asyncio.Future[Any] | _Batch] = deque()
        self.outgoing: list[bytes] = []
        self.lost: BaseException | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)

    def send(self, args: Sequence[Any]) -> asyncio.Future[Any]:
        """Queue one command; the future resolves to its reply (or its error)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if not self.outgoing:
            loop.call_soon(self._flush)
        self.outgoing.append(hiredis.pack_command(tuple(args)))
        self.waiting.append(future)
        return future

    def send_batch(self, commands: Sequence[Sequence[Any]]) -> asyncio.Future[Any]:
        """Queue several commands; one future resolves to their replies, in order."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if not self.outgoing:
            loop.call_soon(self._flush)
        self.outgoing.extend(hiredis.pack_command(tuple(c)) for c in commands)
        self.waiting.append(_Batch(future, len(commands)))
        return future

    def send_packed(self, payload: bytes, count: int) -> asyncio.Future[Any]:
        """Queue ``count`` commands already in RESP (``pack``); one future, their replies."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if not self.outgoing:
            loop.call_soon(self._flush)
        self.outgoing.append(payload)
        self.waiting.append(_Batch(future, count))
        return future

    def _flush(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(self.outgoing))
        self.outgoing.clear()

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while (reply := self.reader.gets()) is not False:
            future = self.waiting[0]
            if isinstance(future, _Batch):
                if future.take(reply):
                    self.waiting.popleft()
                continue
            self.waiting.popleft()
            if future.done():  # its caller was cancelled; the reply is dropped
                continue
            if isinstance(reply, hiredis.ReplyError):
                future.set_exception(BaseParser.parse_error(str(reply)))  # type: ignore[no-untyped-call]
            else:
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = RedisConnectionError(f"connection to Redis lost: {exc or 'closed'}")
        while self.waiting:
            waiter = self.waiting.popleft()
            if not waiter.done():
                (waiter.future if isinstance(waiter, _Batch) else waiter).set_exception(self.lost)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    @property
    def usable(self) -> bool:
        return self.lost is None and self.transport is not None and not self.transport.is_closing()


class Multiplexer:
    """``execute_command`` like redis-py's, over one lazily (re)connected pipelined connection.

    If the connection drops, the commands in flight fail with redis-py's ``ConnectionError`` (their
    effect is unknown, as with any client) and the next command reconnects."""

    def __init__(self, url: str, connect_timeout: float = 5.0) -> None:
        self._options = parse_url(url)
        self._connect_timeout = connect_timeout
        self._connection: _Connection | None = None
        self._connecting: asyncio.Lock | None = None

    # With OMNISTOCK_REDIS_WAIT_REPLICAS the scripts' own connection(s) (redis/replicated.py);
    # None: scripts share this one.
    writes: Multiplexer | None = None

    async def execute_command(self, *args: Any) -> Any:
        """Send one command and return its reply (bytes, int, list or None)."""
        return await (await self._live()).send(args)

    async def execute_many(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """Send several commands in one write; their replies in order."""
        if not commands:
            return []
        connection = await self._live()
        return list(await connection.send_batch(commands))

    async def execute_packed(self, payload: bytes, count: int) -> list[Any]:
        """Like ``execute_many`` for ``count`` commands the caller packed itself (``pack``): a
        batch of hundreds of near-identical reads skips building and packing a tuple each."""
        if not count:
            return []
        connection = await self._live()
        return list(await connection.send_packed(payload, count))

    async def aclose(self) -> None:
        """Close the connection (commands in flight fail)."""
        if self.writes is not None:
            await self.writes.aclose()
        if self._connection is not None:
            self._connection.close()
        self._connection = None

    async def live(self) -> _Connection:
        """The connection, opened first if needed (raises if it cannot be: nothing was sent)."""
        return await self._live()

    async def _live(self) -> _Connection:
        """The connection, (re)connected first if there is none or it was lost."""
        connection = self._connection
        if connection is not None and connection.usable:
            return connection
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._connection is not None and self._connection.usable:
                return self._connection
            connection = await asyncio.wait_for(self._open(), self._connect_timeout)
            self._connection = connection
            return connection

    def _protocol(self) -> _Connection:
        """A new connection's protocol object (redis/replicated.py holds replies back)."""
        return _Connection()

    async def _open(self) -> _Connection:
        loop = asyncio.get_running_loop()
        options: dict[str, Any] = dict(self._options)
        kind = options.get("connection_class")
        if kind is UnixDomainSocketConnection:
            _, connection = await loop.create_unix_connection(self._protocol, options["path"])
        else:
            context = ssl.create_default_context() if kind is SSLConnection else None
            _, connection = await loop.create_connection(
                self._protocol,
                options.get("host", "localhost"),
                options.get("port", 6379),
                ssl=context,
            )
        # The handshake goes first on the connection, before any command.
        handshake: list[list[Any]] = []
        if options.get("password"):
            handshake.append(
                ["AUTH", *filter(None, [options.get("username")]), options["password"]]
            )
        if options.get("db"):
            handshake.append(["SELECT", options["db"]])
        handshake.append(["CLIENT", "SETNAME", NAME])
        try:
            for command in handshake:
                await connection.send(command)
        except BaseException:
            connection.close()
            raise
        return connection
