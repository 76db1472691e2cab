"""OMNISTOCK_REDIS_WAIT_REPLICAS: no script's write is acknowledged before N replicas have it.

``WAIT n timeout`` waits for the replication offset of the *issuing connection's* last write and
blocks that connection meanwhile: it cannot go on the shared hot connection (every read would wait
behind it) nor on another connection (it would not cover the write). So with N > 0 the scripts get
connections of their own (one pipelined connection per primary), and each batch that connection
flushes ends with one ``WAIT`` (group commit: one WAIT covers every write of the batch, as
replication is one ordered stream). A script's reply is handed to its caller only once the WAIT
after it answered; fewer than N replicas within the timeout: :class:`NotReplicated` (a 503). Reads
stay on the hot connection. With OMNISTOCK_REDIS_WAIT_AOF=1 the batch ends with
``WAITAOF 1 N timeout`` instead: on the primary's disk and on N replicas' disks (their AOF must be
on). docs/scaling.md "Failover and what async replication can lose" says what this buys and what
it does not.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import hiredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from omnistock.cluster_url import is_cluster_url
from omnistock.domain.errors import NotReplicated
from omnistock.redis.cluster import ClusterMultiplexer
from omnistock.redis.multiplex import Multiplexer, _Connection
from omnistock.settings import Settings

WRITE_NAME = "omnistock-writes"  # CLIENT LIST shows the write connections under this name
# Only commands that write are held for the WAIT (a slot-map read on the same connection is not).
_HELD = frozenset((b"FCALL", "FCALL", b"FUNCTION", "FUNCTION"))


def _pack(*args: Any) -> bytes:
    packed: bytes = hiredis.pack_command(args)
    return packed


class WaitStats:
    """What /metrics shows: batches confirmed and writes answered NotReplicated (per process)."""

    __slots__ = ("batches", "last_confirmed", "unconfirmed", "writes")

    def __init__(self) -> None:
        self.last_confirmed = 0  # replicas that confirmed the last WAIT (any primary)
        self.batches = 0  # WAITs sent (one per flushed batch of writes)
        self.writes = 0  # writes confirmed by the replicas
        self.unconfirmed = 0  # writes applied on the primary but not confirmed in time


class _WaitingConnection(_Connection):
    """A pipelined connection whose every flushed batch of writes ends with one WAIT; each write's
    future resolves (to its reply, or NotReplicated) only once that WAIT answered."""

    def __init__(self, replicas: int, timeout_ms: int, stats: WaitStats) -> None:
        super().__init__()
        self.replicas, self.timeout_ms, self.stats = replicas, timeout_ms, stats
        self.wait_command = _pack("WAIT", replicas, timeout_ms)
        self.aof = False
        self.in_flight = False  # a WAIT was sent and has not answered
        self.held: list[tuple[asyncio.Future[Any], asyncio.Future[Any]]] = []

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        held, self.held = self.held, []  # writes of a batch not sent yet: failed like the rest
        for inner, outer in held:
            if inner.done() and not inner.cancelled():
                inner.exception()
            if not outer.done():
                outer.set_exception(self.lost or NotReplicated("connection closed"))

    def use_aof(self) -> None:
        """End batches with WAITAOF 1 N (OMNISTOCK_REDIS_WAIT_AOF=1)."""
        self.aof = True
        self.wait_command = _pack("WAITAOF", 1, self.replicas, self.timeout_ms)

    def send(self, args: Sequence[Any]) -> asyncio.Future[Any]:
        inner = super().send(args)
        return self._hold(inner) if args[0] in _HELD else inner

    def send_batch(self, commands: Sequence[Sequence[Any]]) -> asyncio.Future[Any]:
        inner = super().send_batch(commands)
        return self._hold(inner) if any(c[0] in _HELD for c in commands) else inner

    def _hold(self, inner: asyncio.Future[Any]) -> asyncio.Future[Any]:
        outer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.held.append((inner, outer))
        return outer

    def _flush(self) -> None:
        if self.held:
            if self.in_flight:
                # Group commit: the server would run this batch's WAIT only after the one in
                # flight (a WAIT blocks its connection), so the batch grows until that answers.
                return
            held, self.held = self.held, []
            gate: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self.outgoing.append(self.wait_command)
            self.waiting.append(gate)
            self.in_flight = True
            self.stats.batches += 1
            gate.add_done_callback(lambda done: self._release(done, held))
        super()._flush()

    def _confirmed(self, reply: Any) -> int:
        """How many replicas confirmed, from WAIT's (an int) or WAITAOF's ([local, replicas])."""
        if self.aof:
            local, replicas = reply
            return int(replicas) if int(local) >= 1 else -1
        return int(reply)

    def _release(
        self, gate: asyncio.Future[Any], held: list[tuple[asyncio.Future[Any], asyncio.Future[Any]]]
    ) -> None:
        self.in_flight = False
        if self.outgoing:  # the batch that grew meanwhile
            self._flush()
        # Each caller gets an error of its own (handlers annotate the one they raise).
        failure: Callable[[], BaseException] | None = None
        if gate.cancelled():
            failure = partial(NotReplicated, "the write's confirmation was cancelled")
        elif (gate_error := gate.exception()) is not None:
            if isinstance(gate_error, RedisConnectionError) or not isinstance(
                gate_error, RedisError
            ):  # the connection dropped: the effect is unknown, as without WAIT
                lost = gate_error
                failure = lambda: lost  # noqa: E731
            else:  # the server refused WAITAOF (appendonly off)
                failure = partial(
                    NotReplicated, f"the server refused to confirm the write: {gate_error}"
                )
        else:
            confirmed = max(self._confirmed(gate.result()), 0)
            self.stats.last_confirmed = confirmed
            if confirmed < self.replicas:
                failure = partial(
                    NotReplicated,
                    f"the write was applied on the primary but only {confirmed} of "
                    f"{self.replicas} replicas confirmed it within {self.timeout_ms} ms; "
                    "retrying with the same Idempotency-Key is safe",
                    replicas_confirmed=confirmed,
                    replicas_required=self.replicas,
                )
        for inner, outer in held:
            error = inner.exception() if inner.done() and not inner.cancelled() else None
            if outer.done():  # its caller was cancelled
                continue
            if not inner.done():  # the connection was lost before the write's reply
                outer.set_exception(failure() if failure else NotReplicated("no reply"))
            elif inner.cancelled():
                outer.cancel()
            elif error is not None:
                outer.set_exception(error)  # a script error: passed on as it is
            elif failure is not None:
                self.stats.unconfirmed += 1
                outer.set_exception(failure())
            else:
                self.stats.writes += 1
                outer.set_result(inner.result())


class WaitMultiplexer(Multiplexer):
    """A :class:`Multiplexer` whose writes are acknowledged only once ``replicas`` replicas have
    them (or fail with :class:`NotReplicated` after ``timeout_ms``)."""

    def __init__(
        self,
        url: str,
        connect_timeout: float = 5.0,
        *,
        replicas: int,
        timeout_ms: int,
        stats: WaitStats | None = None,
        aof: bool = False,
    ) -> None:
        super().__init__(url, connect_timeout)
        self.replicas, self.timeout_ms = replicas, timeout_ms
        self.stats = stats or WaitStats()
        self.aof = aof  # WAITAOF 1 N instead of WAIT N (OMNISTOCK_REDIS_WAIT_AOF=1)

    def _protocol(self) -> _Connection:
        return _WaitingConnection(self.replicas, self.timeout_ms, self.stats)

    async def _open(self) -> _Connection:
        connection = await super()._open()
        assert isinstance(connection, _WaitingConnection)
        await connection.send(("CLIENT", "SETNAME", WRITE_NAME))
        if self.aof:
            connection.use_aof()
        return connection


class ClusterWaitMultiplexer(ClusterMultiplexer):
    """The same on Redis Cluster: one write connection per primary, each waiting for that
    primary's replicas."""

    def __init__(
        self,
        url: str,
        connect_timeout: float = 5.0,
        *,
        redirects: int = 5,
        retry_seconds: float = 2.0,
        replicas: int,
        timeout_ms: int,
        aof: bool = False,
    ) -> None:
        super().__init__(url, connect_timeout, redirects=redirects, retry_seconds=retry_seconds)
        self.replicas, self.timeout_ms, self.aof = replicas, timeout_ms, aof
        self.stats = WaitStats()

    def _node_client(self, url: str, timeout: float) -> Multiplexer:
        return WaitMultiplexer(
            url,
            timeout,
            replicas=self.replicas,
            timeout_ms=self.timeout_ms,
            stats=self.stats,
            aof=self.aof,
        )


def with_replica_waits(hot: Multiplexer, settings: Settings) -> Multiplexer:
    """``hot`` with its ``writes`` connection(s) when OMNISTOCK_REDIS_WAIT_REPLICAS > 0 (else
    ``hot`` unchanged: scripts share the hot connection, as before)."""
    replicas = settings.redis_wait_replicas
    if replicas <= 0 or settings.redis_url is None:
        return hot
    timeout_ms, aof = settings.redis_wait_timeout_ms, settings.redis_wait_aof == 1
    if is_cluster_url(settings.redis_url):
        hot.writes = ClusterWaitMultiplexer(
            settings.redis_url,
            redirects=settings.redis_cluster_redirects,
            retry_seconds=settings.redis_cluster_retry_seconds,
            replicas=replicas,
            timeout_ms=timeout_ms,
            aof=aof,
        )
    else:
        hot.writes = WaitMultiplexer(
            settings.redis_url, replicas=replicas, timeout_ms=timeout_ms, aof=aof
        )
    return hot


def wait_stats(hot: Multiplexer) -> WaitStats | None:
    """The write connections' counters (None when WAIT is off)."""
    stats = getattr(hot.writes, "stats", None)
    return stats if isinstance(stats, WaitStats) else None
