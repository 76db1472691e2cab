"""The script runner: what every Redis operation of a process shares (its connections, the
function library, partitions), running one script with the write gate, the Postgres hand-off
(``on_written``) and the Idempotency-Key claim, and splitting a call by partition."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Self

from omnistock.domain.commands import Adjustment, Count, Idempotency, Move
from omnistock.domain.ids import partition_of
from omnistock.redis import idempotency, keys
from omnistock.redis.multiplex import Multiplexer
from omnistock.redis.scripts import Reply, Script, Scripts, check
from omnistock.settings import Settings


async def _each_partition(
    groups: dict[int, list[int]], run: Callable[[int, list[int]], Awaitable[Reply]]
) -> list[Reply]:
    """``run`` for each partition's indexes, concurrently; the replies in ``groups`` order."""
    if len(groups) == 1:  # an import's batch, a single-location request: no task to start
        ((p, indexes),) = groups.items()
        return [await run(p, indexes)]
    return list(await asyncio.gather(*(run(p, indexes) for p, indexes in groups.items())))


class ScriptRunner:
    """What every part of ``StockStore`` shares: the connections (``hot`` for the request path,
    ``client`` for bulk and background commands), the function library, the partitions, and
    running a script."""

    def __init__(
        self,
        client: Any,
        hot: Multiplexer,
        scripts: Scripts,
        *,
        partitions: int,
        idempotency_ttl_seconds: int,
        retention_seconds: int,
        supply_retention_seconds: int = 3600,
    ) -> None:
        self.client = client
        self.hot = hot
        self.scripts = scripts
        self.partitions = partitions
        self._idem_ttl_ms = idempotency_ttl_seconds * 1000
        self._retention_ms = retention_seconds * 1000
        self._supply_retention_ms = supply_retention_seconds * 1000  # finished supply in Redis
        # Called with (partition, first id, last id) of the events each script appended; with
        # OMNISTOCK_ACK=postgres it writes them to Postgres before the caller answers.
        self.on_written: Callable[[int, bytes, bytes], Awaitable[None]] | None = None
        # Called before every mutation but expiry; raises to refuse it (back-pressure).
        self.gate: Callable[[], None] | None = None

    @classmethod
    def from_settings(
        cls, settings: Settings, client: Any, hot: Multiplexer, scripts: Scripts
    ) -> Self:
        """The store a serving or CLI process uses, as its settings configure it."""
        return cls(
            client,
            hot,
            scripts,
            partitions=settings.partitions,
            idempotency_ttl_seconds=settings.idempotency_ttl_seconds,
            retention_seconds=settings.finished_reservation_retention_seconds,
            supply_retention_seconds=settings.finished_supply_retention_seconds,
        )

    def partition(self, location_id: str) -> int:
        return partition_of(location_id, self.partitions)

    def _by_partition(self, items: Sequence[Adjustment | Count | Move]) -> dict[int, list[int]]:
        """The indexes of ``items`` by the partition of their location (each location hashed
        once: an import batch names few locations many times)."""
        groups: dict[int, list[int]] = defaultdict(list)
        partitions: dict[str, int] = {}
        for index, item in enumerate(items):
            p = partitions.get(item.location)
            if p is None:
                p = partitions[item.location] = self.partition(item.location)
            groups[p].append(index)
        return groups

    async def _run(
        self,
        script: Script,
        p: int,
        script_keys: list[str],
        script_args: list[Any],
        subject: str,
        tolerate: tuple[int, ...] = (),
        gated: bool = True,
        bulk: bool = False,
    ) -> Reply:
        """Run a script (``bulk``: on the pool); report the events it appended (see
        ``on_written``); raise on failure codes not in ``tolerate``."""
        if gated and self.gate is not None:
            self.gate()
        # With OMNISTOCK_REDIS_WAIT_REPLICAS every script (bulk ones too) goes through the write
        # connection(s), whose replies wait for the replicas (redis/replicated.py).
        conn = self.hot.writes or (self.client if bulk else self.hot)
        reply = await script(conn, script_keys, script_args)
        if reply.replayed and self.hot.writes is not None:
            # A replay writes nothing, and WAIT covers only the connection's own last write: this
            # one write makes the WAIT cover the recorded first attempt too (maybe another
            # instance's, answered 503 not-replicated).
            await self.scripts.wait_mark(self.hot.writes, [keys.wait_mark(p)], [])
        if reply.first_id and self.on_written is not None:
            await self.on_written(p, reply.first_id, reply.last_id)
        if reply.code in tolerate:
            return reply
        return check(reply, subject)

    async def _claim(self, idem: Idempotency | None) -> None:
        """Bind the key to this request's body wherever it acts; reuse with another body: 422."""
        await idempotency.claim(self.hot, idem, self._idem_ttl_ms)

    def _idem_key(self, p: int, idem: Idempotency | None) -> str:
        return idempotency.record_key(p, idem)

    def _idem_args(self, idem: Idempotency | None) -> list[Any]:
        return idempotency.script_args(idem, self._idem_ttl_ms)
