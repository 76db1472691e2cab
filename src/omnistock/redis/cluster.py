"""Redis/Valkey Cluster: the ``redis+cluster://`` URL and the hot path's per-primary routing.

The hot path keeps one pipelined connection (a :class:`Multiplexer`) per primary and sends each
command to the primary that serves the slot of its key. Every key of a partition carries the hash
tag ``{p<N>}`` (redis/keys.py), so a script's keys are one slot and a tag's slot is computed once.
A MOVED reply updates the map (and refreshes it whole, once), an ASK reply is followed with ASKING
on the same connection, and a shard that cannot be reached (a failover under way) is waited for,
within a bounded time, with the map refreshed from any node that answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from redis.crc import key_slot
from redis.exceptions import (
    AskError,
    ClusterDownError,
    MovedError,
    RedisError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError

from omnistock.cluster_url import host_part as _host_part
from omnistock.cluster_url import is_cluster_url, parse_cluster_url
from omnistock.redis.multiplex import Multiplexer

if TYPE_CHECKING:
    from omnistock.settings import Settings

log = logging.getLogger("omnistock.cluster")

SLOTS = 16384
_TAG_CACHE_MAX = 4096  # hash tags whose slot is remembered (partitions, workers; digests rotate)
# Commands without a key that every primary must run (the function library).
_BROADCAST = ("FUNCTION", b"FUNCTION")
# Errors that mean the command did not run: safe to send again once the map is refreshed.
_RETRYABLE = (TryAgainError, ClusterDownError)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def hash_tag(key: str | bytes) -> str | bytes:
    """What of ``key`` is hashed: its first non-empty ``{...}``, else all of it."""
    if isinstance(key, bytes):
        start = key.find(b"{")
        if start >= 0:
            end = key.find(b"}", start + 1)
            if end > start + 1:
                return key[start + 1 : end]
        return key
    start = key.find("{")
    if start >= 0:
        end = key.find("}", start + 1)
        if end > start + 1:
            return key[start + 1 : end]
    return key


def command_key(args: Sequence[Any]) -> Any:
    """The key a hot-path command is routed by: FCALL's first key, else the first argument."""
    head = args[0]
    if head in ("FCALL", "FCALL_RO", b"FCALL", b"FCALL_RO"):
        return args[3] if int(args[2]) > 0 else None
    return args[1] if len(args) > 1 else None


class ClusterMultiplexer(Multiplexer):
    """The hot path on Redis Cluster: ``execute_command``/``execute_many`` like
    :class:`Multiplexer`'s, over one pipelined connection per primary, routed by slot.

    A command that failed because the connection dropped after it was sent is not sent again (its
    effect is unknown, as on standalone); one that was refused before running (MOVED, ASK,
    TRYAGAIN, CLUSTERDOWN, a connection that could not be opened) is, within ``redirects`` and
    ``retry_seconds``."""

    def __init__(
        self,
        url: str,
        connect_timeout: float = 5.0,
        *,
        redirects: int = 5,
        retry_seconds: float = 2.0,
    ) -> None:
        self._cluster = parse_cluster_url(url)
        self._connect_timeout = connect_timeout
        self._redirects = redirects
        self._retry_seconds = retry_seconds
        self._slots: list[str | None] = [None] * SLOTS
        self._nodes: dict[str, Multiplexer] = {}
        self._primaries: list[str] = []
        self._tags: dict[str | bytes, int] = {}
        self._refresh: asyncio.Task[None] | None = None
        self._refreshing: asyncio.Lock | None = None
        self._refreshed_at = float("-inf")

    # -- routing -------------------------------------------------------------------------------

    def slot(self, key: str | bytes) -> int:
        """The slot of ``key``, its hash tag's slot remembered."""
        tag = hash_tag(key)
        found = self._tags.get(tag)
        if found is None:
            if len(self._tags) >= _TAG_CACHE_MAX:
                self._tags.clear()
            found = self._tags[tag] = key_slot(tag if isinstance(tag, bytes) else tag.encode())
        return found

    def node(self, address: str) -> Multiplexer:
        """The pipelined connection to the node at ``host:port`` (opened on first use)."""
        found = self._nodes.get(address)
        if found is None:
            host, _, port = address.rpartition(":")
            # A node that does not answer (a failover under way) is given up on within the
            # retry window, not after the full connect timeout.
            timeout = min(self._connect_timeout, max(self._retry_seconds, 0.5))
            found = self._nodes[address] = self._node_client(
                self._cluster.node_url(host.strip("[]"), int(port)), timeout
            )
        return found

    def _node_client(self, url: str, timeout: float) -> Multiplexer:
        """One primary's pipelined connection (redis/replicated.py's waits for replicas)."""
        return Multiplexer(url, timeout)

    def owner(self, key: str | bytes) -> str | None:
        """The primary (``host:port``) the map has for ``key``'s slot (None before it is read)."""
        return self._slots[self.slot(key)]

    async def live(self) -> Any:
        """Not one connection here: :meth:`node` gives each primary's."""
        raise TypeError("a cluster has a connection per primary: use node(address).live()")

    async def primaries(self) -> list[str]:
        """The primaries' addresses (the map read first if there is none)."""
        if not self._primaries:
            await self.refresh()
        return list(self._primaries)

    async def execute_command(self, *args: Any) -> Any:
        """Send one command to the primary of its key's slot and return its reply."""
        if args[0] in _BROADCAST:  # FUNCTION LOAD: the library goes on every primary
            replies = await asyncio.gather(
                *(self._send(None, args, node=a) for a in await self.primaries()),
                return_exceptions=True,
            )
            # A primary that is down (a failover under way) needs no library: its replica has
            # it from replication, or gets it when it answers "function not found".
            for reply in replies:
                if not isinstance(reply, BaseException):
                    return reply
            raise replies[0]
        key = command_key(args)
        if key is None:
            return await self._send(None, args)
        return await self._send(self.slot(key), args)

    async def execute_many(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """Send several commands, one write per primary they name; their replies in order. A
        batch a node refused (a slot moved) is sent again command by command, following the
        redirects. Only reads go here (a refused read is safe to repeat)."""
        if not commands:
            return []
        if not self._primaries:
            await self.refresh()
        groups: dict[str, list[int]] = {}
        for index, command in enumerate(commands):
            address = self._slots[self.slot(command_key(command))] or self._any_node()
            groups.setdefault(address, []).append(index)
        replies: list[Any] = [None] * len(commands)

        async def run(address: str, indexes: list[int]) -> None:
            try:
                found = await self.node(address).execute_many([commands[i] for i in indexes])
            except (TimeoutError, MovedError, AskError, *_RETRYABLE, OSError):
                self._schedule_refresh()
                found = [await self.execute_command(*commands[i]) for i in indexes]
            for i, reply in zip(indexes, found, strict=True):
                replies[i] = reply

        if len(groups) == 1:
            ((address, indexes),) = groups.items()
            await run(address, indexes)
        else:
            await asyncio.gather(*(run(a, i) for a, i in groups.items()))
        return replies

    async def _send(self, slot: int | None, args: Sequence[Any], node: str | None = None) -> Any:
        """Send ``args`` to the owner of ``slot`` (or to ``node``), following redirects."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._retry_seconds
        asking: str | None = None
        redirects, delay = 0, 0.02
        while True:
            if node is not None:
                address = node
            elif asking is not None:
                address = asking
            else:
                if slot is not None and self._slots[slot] is None:
                    await self.refresh()
                address = (self._slots[slot] if slot is not None else None) or self._any_node()
            target = self.node(address)
            try:
                connection = await target.live()
            except (TimeoutError, OSError, RedisConnectionError) as exc:
                # Not sent: the node is down (a failover under way) or gone.
                if loop.time() + delay > deadline:
                    raise RedisConnectionError(
                        f"cluster node {address} unreachable: {exc}"
                    ) from exc
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.5)
                node = None if slot is not None else node
                await self.refresh(force=True)
                continue
            try:
                if asking is not None:
                    asking = None
                    return (await connection.send_batch([("ASKING",), args]))[1]
                return await connection.send(args)
            except MovedError as exc:
                redirects += 1
                if redirects > self._redirects:
                    raise
                if slot is not None:
                    self._slots[slot] = f"{_host_part(exc.host)}:{exc.port}"
                node = None
                self._schedule_refresh()
            except AskError as exc:
                redirects += 1
                if redirects > self._redirects:
                    raise
                asking = f"{_host_part(exc.host)}:{exc.port}"
            except _RETRYABLE:
                if loop.time() + delay > deadline:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.5)
                await self.refresh(force=True)
            except RedisConnectionError:
                self._schedule_refresh()  # sent, effect unknown: the caller decides
                raise

    def _any_node(self) -> str:
        if self._primaries:
            return self._primaries[0]
        host, port = self._cluster.nodes[0]
        return f"{_host_part(host)}:{port}"

    # -- the slot map --------------------------------------------------------------------------

    def _schedule_refresh(self) -> None:
        if self._refresh is None or self._refresh.done():
            self._refresh = asyncio.get_running_loop().create_task(self._refresh_quietly())

    async def _refresh_quietly(self) -> None:
        with contextlib.suppress(RedisError, OSError, asyncio.TimeoutError):
            await self.refresh(force=True)

    async def refresh(self, *, force: bool = False) -> None:
        """Read the slot map (CLUSTER SLOTS) from the first node that answers: known primaries
        first, then the URL's nodes. One refresh at a time; a forced one at most every 100 ms."""
        if not force and self._primaries:
            return
        if self._refreshing is None:
            self._refreshing = asyncio.Lock()
        loop = asyncio.get_running_loop()
        asked_at = loop.time()
        async with self._refreshing:
            if self._primaries and (not force or self._refreshed_at > asked_at - 0.1):
                return  # done meanwhile (or just now) by another caller
            seeds = [f"{_host_part(h)}:{p}" for h, p in self._cluster.nodes]
            last: BaseException | None = None
            for address in dict.fromkeys([*self._primaries, *seeds]):
                try:
                    reply = await self.node(address).execute_command("CLUSTER", "SLOTS")
                except (TimeoutError, RedisError, OSError) as exc:
                    last = exc
                    continue
                self._apply(reply, address)
                self._refreshed_at = loop.time()
                return
            raise RedisConnectionError(f"no cluster node answered CLUSTER SLOTS: {last}")

    def _apply(self, reply: list[Any], asked: str) -> None:
        slots: list[str | None] = [None] * SLOTS
        primaries: list[str] = []
        for start, end, primary, *_replicas in reply:
            host = _text(primary[0])
            if host in ("", "?"):  # the node does not know its own address: the one we asked
                host = asked.rpartition(":")[0].strip("[]")
            address = f"{_host_part(host)}:{int(primary[1])}"
            if address not in primaries:
                primaries.append(address)
            for s in range(int(start), int(end) + 1):
                slots[s] = address
        self._slots = slots
        self._primaries = primaries
        log.debug("cluster map: %d primaries", len(primaries))

    async def aclose(self) -> None:
        """Close every node's connection."""
        if self._refresh is not None:
            self._refresh.cancel()
        if self.writes is not None:
            await self.writes.aclose()
        for node in self._nodes.values():
            await node.aclose()
        self._nodes.clear()


def hot_client(settings: Settings) -> Multiplexer:
    """The hot path's connection(s) for ``settings.redis_url``: one pipelined connection on
    standalone (the default), one per primary on Redis Cluster."""
    assert settings.redis_url is not None
    if is_cluster_url(settings.redis_url):
        return ClusterMultiplexer(
            settings.redis_url,
            redirects=settings.redis_cluster_redirects,
            retry_seconds=settings.redis_cluster_retry_seconds,
        )
    return Multiplexer(settings.redis_url)
