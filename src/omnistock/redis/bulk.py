"""Bulk writes without replies: many commands streamed over one connection with
``CLIENT REPLY OFF``. A rebuild writes a million positions; one round trip and one parsed reply
per command (or a script call per chunk) would cost more than the writes themselves."""

from __future__ import annotations

from types import TracebackType
from typing import Any

import hiredis
from redis.exceptions import ResponseError

_FLUSH_BYTES = 1 << 20


def _pack(*args: Any) -> bytes:
    packed: bytes = hiredis.pack_command(args)
    return packed


class BulkWriter:
    """``async with BulkWriter(client) as bulk: bulk.add("HSET", key, ...)``. Commands are sent
    in order as the buffer fills; leaving the block waits until the server has run them all (a
    final PING answers only after them). Errors of individual commands are not reported, so use
    it only for writes that cannot fail (plain HSET/SADD/DEL of omnistock's own keys)."""

    def __init__(self, client: Any) -> None:
        self._pool = client.connection_pool
        self._conn: Any = None
        self._buffer: list[bytes] = []
        self._size = 0

    async def __aenter__(self) -> BulkWriter:
        self._conn = await self._pool.get_connection()
        await self._conn.send_packed_command(_pack("CLIENT", "REPLY", "OFF"))
        return self

    def add(self, *args: Any) -> None:
        packed = _pack(*args)
        self._buffer.append(packed)
        self._size += len(packed)

    async def flush_if_full(self) -> None:
        """Send what is buffered once it is big enough (call it between adds)."""
        if self._size >= _FLUSH_BYTES:
            await self._send()

    async def _send(self) -> None:
        if self._buffer:
            await self._conn.send_packed_command(b"".join(self._buffer))
            self._buffer.clear()
            self._size = 0

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if kind is None:
                await self._send()
                await self._conn.send_packed_command(_pack("CLIENT", "REPLY", "ON"))
                if await self._conn.read_response() != b"OK":
                    raise ResponseError("bulk write: CLIENT REPLY ON was not acknowledged")
            else:
                await self._conn.disconnect()  # replies are off: never hand it out again
        finally:
            await self._pool.release(self._conn)
