"""The process's Redis client: one blocking pool, commands packed by hiredis.

redis-py's asyncio connection packs every argument in Python; the scripts take thousands of
arguments per call on bulk paths (imports, rebuilds), where that packing dominated the cost.
"""

from __future__ import annotations

from typing import Any

import hiredis
import redis.asyncio as aredis


class HiredisPackedConnection(aredis.Connection):
    """A connection whose commands are serialised by hiredis (C) instead of Python."""

    def pack_command(self, *args: Any) -> list[bytes]:
        # Like redis-py: a first argument such as "CONFIG GET" is several protocol words.
        head = args[0]
        if (isinstance(head, str) and " " in head) or (isinstance(head, bytes) and b" " in head):
            args = (*head.split(), *args[1:])
        return [hiredis.pack_command(args)]


class QuickPool(aredis.BlockingConnectionPool):
    """A blocking pool that hands out an idle connection at once when nobody is waiting for one.

    redis-py's blocking pool enters a condition, a timeout and two metrics hooks for every
    command: about a tenth of a request's CPU on the hot path. Only when the pool is exhausted (or
    tasks already wait) does this take that path, so waiters keep their turn."""

    async def get_connection(self, command_name: Any = None, *keys: Any, **options: Any) -> Any:
        if self._available_connections and not getattr(self._condition, "_waiters", None):
            connection = self.get_available_connection()  # type: ignore[no-untyped-call]
            try:
                await self.ensure_connection(connection)
            except BaseException:
                await self.release(connection)
                raise
            return connection
        return await super().get_connection()  # type: ignore[no-untyped-call]


def redis_client(url: str, max_connections: int) -> aredis.Redis:
    """One pool per process; callers wait for a free connection rather than fail. Commands have
    no per-call timeout (redis-py wraps each in a timer task); a dead server is noticed by the
    connection (keepalive, reset) and /readyz probes it with a timeout of its own."""
    pool = QuickPool.from_url(
        url,
        max_connections=max_connections,
        timeout=10,
        connection_class=HiredisPackedConnection,
        socket_timeout=None,
        socket_connect_timeout=5,
        socket_keepalive=True,
    )
    return aredis.Redis(connection_pool=pool)
