"""The process's Redis client: one blocking pool, commands packed by hiredis.

redis-py's asyncio connection packs every argument in Python; the scripts take thousands of
arguments per call on bulk paths (imports, rebuilds), where that packing dominated the cost.
"""

from __future__ import annotations

import asyncio
from typing import Any

import hiredis
import redis.asyncio as aredis
from redis.asyncio.cluster import ClusterNode, RedisCluster

from omnistock.cluster_url import is_cluster_url, parse_cluster_url


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


class ClusterClient(RedisCluster):
    """redis-py's cluster client (routing, MOVED/ASK, per-node pools), for the bulk and
    background commands on Redis Cluster. FCALL is routed by its first key here: redis-py would
    ask the server for the keys of every call (COMMAND GETKEYS, a round trip). Callers wait for
    a free connection, as with the standalone pool: redis-py's cluster nodes would refuse one past
    ``max_connections`` instead."""

    _slots_free: asyncio.Semaphore | None = None
    _max_in_flight = 64

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        head = args[0]
        if isinstance(head, str) and head.upper() == "FUNCTION" and len(args) > 1:
            # redis-py routes "FUNCTION LOAD" (to every primary) only as one word
            args = (f"FUNCTION {args[1]}".upper(), *args[2:])
        if self._slots_free is None:
            self._slots_free = asyncio.Semaphore(self._max_in_flight)
        async with self._slots_free:
            return await super().execute_command(*args, **kwargs)

    async def _determine_slot(self, command: str, *args: Any) -> int:
        name = command.upper() if isinstance(command, str) else command.decode().upper()
        if name in ("FCALL", "FCALL_RO") and len(args) > 2 and int(args[1]) > 0:
            return self.keyslot(args[2])
        if name in ("XREAD", "XREADGROUP"):
            # Keys are the first half of what follows STREAMS: no COMMAND GETKEYS round trip,
            # which redis-py would send (on a connection of one node's pool) for every read.
            words = [a.upper() if isinstance(a, str) else a for a in args]
            at = words.index("STREAMS") if "STREAMS" in words else words.index(b"STREAMS")
            rest = args[at + 1 :]
            slots = {self.keyslot(key) for key in rest[: len(rest) // 2]}
            if len(slots) == 1:
                return slots.pop()
        slot: int = await super()._determine_slot(command, *args)
        return slot


def cluster_client(url: str, max_connections: int) -> ClusterClient:
    """A cluster client from a ``redis+cluster://`` URL: at most ``max_connections`` per node,
    and as many commands in flight at once (more wait)."""
    parsed = parse_cluster_url(url)
    client = ClusterClient(
        startup_nodes=[ClusterNode(host, port) for host, port in parsed.nodes],
        username=parsed.username,
        password=parsed.password,
        ssl=parsed.tls,
        max_connections=max_connections,
        socket_timeout=None,
        socket_connect_timeout=5,
        socket_keepalive=True,
    )
    client._max_in_flight = max_connections
    return client


def any_client(url: str, max_connections: int) -> Any:
    """The pool-side client ``url`` asks for: standalone (the default) or cluster."""
    if is_cluster_url(url):
        return cluster_client(url, max_connections)
    return redis_client(url, max_connections)


def is_cluster(client: Any) -> bool:
    """True when ``client`` talks to a Redis Cluster (commands of several slots go apart)."""
    return isinstance(client, RedisCluster)


def reader_client(url: str, streams: int) -> Any:
    """A client of its own for a reader of ``streams`` streams: standalone, one connection
    without a read timeout (XREAD blocks by itself); on a cluster, a connection per stream
    (each blocks on its own: one command names one slot)."""
    if is_cluster_url(url):
        return cluster_client(url, streams + 2)
    return aredis.Redis.from_url(url, socket_keepalive=True, socket_timeout=None)
