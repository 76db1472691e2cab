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


def redis_client(url: str, max_connections: int) -> aredis.Redis:
    """One pool per process; callers wait for a free connection rather than fail."""
    pool = aredis.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=10, connection_class=HiredisPackedConnection
    )
    return aredis.Redis(connection_pool=pool)
