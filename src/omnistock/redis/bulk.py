"""Bulk writes without replies: many commands streamed over one connection with
``CLIENT REPLY OFF``. A rebuild writes a million positions; one round trip and one parsed reply
per command (or a script call per chunk) would cost more than the writes themselves."""

from __future__ import annotations

from types import TracebackType
from typing import Any

import hiredis
from redis.exceptions import ResponseError

from omnistock.redis.client import is_cluster

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
        if is_cluster(client):
            raise TypeError("a cluster client: use bulk_writer(), which picks ClusterBulkWriter")
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


class ClusterBulkWriter:
    """The same interface on Redis Cluster: commands go in non-transactional pipelines (split by
    node by the cluster client) of ``_CLUSTER_BATCH``, with replies (a node's replies cannot be
    switched off per slot). Slower than the standalone writer, but each node gets its share."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._commands: list[tuple[Any, ...]] = []

    async def __aenter__(self) -> ClusterBulkWriter:
        return self

    def add(self, *args: Any) -> None:
        self._commands.append(args)

    async def flush_if_full(self) -> None:
        """Send what is buffered once it is big enough (call it between adds)."""
        if len(self._commands) >= _CLUSTER_BATCH:
            await self._send()

    async def _send(self) -> None:
        while self._commands:
            chunk, self._commands = self._commands[:_CLUSTER_BATCH], self._commands[_CLUSTER_BATCH:]
            async with self._client.pipeline(transaction=False) as pipe:
                for command in chunk:
                    pipe.execute_command(*command)
                await pipe.execute()

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is None:
            await self._send()


_CLUSTER_BATCH = 5000


def bulk_writer(client: Any) -> BulkWriter | ClusterBulkWriter:
    """The bulk writer for ``client``: replies off on standalone, pipelines on a cluster."""
    return ClusterBulkWriter(client) if is_cluster(client) else BulkWriter(client)
