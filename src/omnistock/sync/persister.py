"""The persister: partition streams -> Postgres, exactly once in effect.

Every ``serve`` process runs one; together they read all partition streams as one consumer group.
Each batch is written in one transaction (ledger rows ignore replays; positions and reservations
only move forward), then acknowledged. Killed at any instant, nothing is lost (unacked entries are
claimed again) and nothing is doubled (writes are idempotent).

An entry that cannot be written (it does not decode, or Postgres refuses its values) would block
every batch it is claimed with, for ever: its batch is split until the entry is alone, and that
entry is quarantined (kept in the ``quarantined_events`` table with the error, acknowledged,
counted) so everything behind it keeps flowing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg
import msgspec
from redis.exceptions import RedisError

from omnistock.domain.errors import NotFound
from omnistock.domain.events import (
    IDEMPOTENCY,
    OPERATION,
    POSITION,
    RESERVATION,
    SUPPLY,
    TRANSFER,
    decode_idempotency,
    decode_position,
)
from omnistock.domain.ids import sourcing_partition
from omnistock.domain.reservations import decode_reservation
from omnistock.domain.sourcing_holds import decode_hold
from omnistock.domain.supply import decode_supply
from omnistock.domain.transfers import decode_transfer
from omnistock.metrics import Metrics
from omnistock.postgres import ledger
from omnistock.postgres import supply as supply_table
from omnistock.postgres import transfers as transfer_table
from omnistock.redis import keys
from omnistock.redis.client import is_cluster
from omnistock.redis.stream_reads import read_streams
from omnistock.redis.streams import GROUP, parse_id
from omnistock.tasks import reraise_if_cancelled

log = logging.getLogger("omnistock.persister")

Entry = tuple[int, bytes, dict[bytes, bytes]]  # partition, stream id, fields
# Test seam: called at "before_commit" and "after_commit"; raising there simulates a crash.
FaultHook = Callable[[str], Awaitable[None]]
# What an entry's own content causes, the same way every time it is tried: decoding errors
# (msgspec's are ValueErrors, as are asyncpg's client-side encoding errors; a number past
# bigint is an OverflowError) and Postgres refusing the values (class 22 data exceptions,
# class 23 constraint violations). Anything else (I/O, a crash) is not the entry's fault: it
# propagates, and the batch is tried again later.
POISON: tuple[type[Exception], ...] = (
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    ArithmeticError,
    asyncpg.DataError,
    asyncpg.IntegrityConstraintViolationError,
)


class Batch:
    """One batch of stream entries, shaped as the column arrays the SQL takes."""

    def __init__(self, entries: Sequence[Entry]) -> None:
        self.ledger: list[tuple[Any, ...]] = []
        positions: dict[tuple[str, str], tuple[Any, ...]] = {}
        reservations: dict[str, tuple[Any, ...]] = {}
        holds: dict[str, tuple[Any, ...]] = {}
        idem: dict[str, tuple[str, bytes, int]] = {}
        supplies: dict[str, tuple[Any, ...]] = {}
        transfers: dict[tuple[str, str], tuple[Any, ...]] = {}  # (id, side) -> newest
        offsets: dict[int, tuple[int, int]] = {}
        for p, raw_id, fields in entries:
            ms, seq = parse_id(raw_id)
            offsets[p] = max(offsets.get(p, (0, 0)), (ms, seq))
            if (raw := fields.get(POSITION)) is not None:
                e = decode_position(raw)
                row = (f"{p}:{raw_id.decode()}", p, e.ts, e.location, e.sku, e.kind, e.reason,
                       e.ref, e.actor, e.idempotency_key, e.delta_on_hand, e.delta_reserved,
                       e.on_hand, e.reserved, e.safety_stock, e.version, e.reservation_id,
                       e.delta_unsellable, e.unsellable, e.delta_incoming, e.incoming)  # fmt: skip
                self.ledger.append(row)
                current = positions.get((e.location, e.sku))
                if current is None or current[5] < e.version:
                    own = e.own_safety_stock if e.own_safety_stock >= 0 else None
                    positions[(e.location, e.sku)] = (e.location, e.sku, e.on_hand, e.reserved,
                                                      own, e.version, e.ts, e.unsellable,
                                                      e.incoming)  # fmt: skip
            elif (raw := fields.get(RESERVATION)) is not None:
                doc = raw.decode()
                r = decode_reservation(doc)
                reservations[r.id] = (
                    r.id,
                    r.location,
                    r.status,
                    r.created_at,
                    r.expires_at,
                    doc,
                    ms,
                    seq,
                )
            elif (raw := fields.get(OPERATION)) is not None:
                # A sourcing hold's record: the newest event per id wins, here and in the SQL.
                doc = raw.decode()
                h = decode_hold(doc)
                if not _names_partition(h.id, p):  # rebuild finds a record by its id's partition
                    raise ValueError(f"sourcing hold id {h.id!r} does not name partition {p}")
                seen = holds.get(h.id)
                if seen is None or (seen[5], seen[6]) < (ms, seq):
                    holds[h.id] = (h.id, h.status, h.created_at, h.updated_at, doc, ms, seq)
            elif (raw := fields.get(SUPPLY)) is not None:
                text = raw.decode()
                y = decode_supply(text)
                supplies[y.id] = (y.id, y.location, y.status, y.eta, y.created_at, text, ms, seq)
            elif (raw := fields.get(TRANSFER)) is not None:
                # Each side comes from its own partition's stream: the newest per side wins.
                text = raw.decode()
                t = decode_transfer(text)
                transfers[(t.id, t.side)] = (t.id, t.from_, t.to, t.created_at, text, ms, seq)
            elif (raw := fields.get(IDEMPOTENCY)) is not None:
                i = decode_idempotency(raw)
                # The record as Redis keeps it (see _lib.lua): hash, code, first, last, payload.
                record = "\n".join(
                    (i.hash, str(i.code), i.first or raw_id.decode(), raw_id.decode(), i.payload)
                )
                idem[i.key] = (i.key, record.encode(), i.ts + i.ttl_ms)
        self.positions = list(positions.values())
        self.reservations = _columns(list(reservations.values()), 8)
        self.idempotency = _columns(list(idem.values()), 3)
        self.sourcing_holds = _columns(list(holds.values()), 7)
        self.supply = _columns(list(supplies.values()), 8)
        self.transfers_from = _columns([v for k, v in transfers.items() if k[1] == "from"], 7)
        self.transfers_to = _columns([v for k, v in transfers.items() if k[1] == "to"], 7)
        self.offsets = _columns([(p, ms, seq) for p, (ms, seq) in offsets.items()], 3)
        self.size = len(entries)

    async def write(self, conn: Any) -> None:
        """Write everything in the caller's transaction (events and positions by COPY)."""
        await ledger.write_batch(
            conn,
            self.ledger,
            self.positions,
            self.reservations,
            self.idempotency,
            self.offsets,
            sourcing_holds=self.sourcing_holds,
        )
        await supply_table.upsert(conn, self.supply)
        await transfer_table.upsert(conn, self.transfers_from, self.transfers_to)


def _names_partition(hold_id: str, partition: int) -> bool:
    try:
        return sourcing_partition(hold_id, partition + 1) == partition
    except NotFound:
        return False


def _columns(rows: list[tuple[Any, ...]], width: int) -> list[list[Any]]:
    return [list(col) for col in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


class Persister:
    """Reads every partition stream as consumer ``name`` of the persister group."""

    def __init__(
        self,
        redis: Any,
        db: asyncpg.Pool,
        partitions: int,
        *,
        batch: int = 2000,
        claim_idle_ms: int = 5000,
        fault: FaultHook | None = None,
        streams: dict[bytes, int] | None = None,
        metrics: Metrics | None = None,
        cluster_interval_ms: int = 0,
    ) -> None:
        self.redis = redis
        # Redis Cluster only: the shortest time between two polling rounds while entries keep
        # coming, so each round takes a batch per stream instead of one entry (a round costs a
        # command per stream).
        self.cluster_interval = cluster_interval_ms / 1000 if is_cluster(redis) else 0.0
        self.db = db
        self.partitions = partitions
        self.count = max(1, batch // 8)  # per stream per read
        self.claim_idle_ms = claim_idle_ms
        self.fault = fault
        self.name = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        # stream name -> partition: every partition's stream unless told otherwise (a rebuild
        # drains streams it has set aside)
        self.streams = streams or {keys.stream(p).encode(): p for p in range(partitions)}
        self._stream_of = {p: name for name, p in self.streams.items()}
        self.metrics = metrics
        self.persisted = 0
        self.quarantined = 0
        self.stopping = False
        self.healthy = True
        self.last_error = ""

    async def run(self, block_ms: int = 1000) -> None:
        """Persist until :meth:`stop`; outages of Redis or Postgres are waited out."""
        claim_every, since_claim = 5.0, 5.0
        delay = 0.1
        while not self.stopping:
            try:
                loop = asyncio.get_running_loop()
                started = loop.time()
                if since_claim >= claim_every:
                    await self.claim_stale()
                    since_claim = 0.0
                found = await self.step(block_ms)
                if found and self.cluster_interval:
                    await asyncio.sleep(self.cluster_interval - (loop.time() - started))
                since_claim += loop.time() - started
                self.healthy, self.last_error, delay = True, "", 0.1
            except (RedisError, asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
                reraise_if_cancelled()
                self.healthy, self.last_error = False, f"{type(exc).__name__}: {exc}"
                log.warning("persister: %s; retrying", self.last_error)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
            except Exception as exc:  # unexpected: the supervisor restarts run()
                self.last_error = f"{type(exc).__name__}: {exc}"
                raise

    def stop(self) -> None:
        """Ask :meth:`run` to return after the current read (at most ``block_ms``). Cancelling
        it instead can leave redis-py waiting on a blocking read that swallowed the cancel."""
        self.stopping = True

    async def step(self, block_ms: int | None = None) -> int:
        """Read new entries (waiting up to ``block_ms``), persist and ack them."""
        reply = await read_streams(
            self.redis,
            dict.fromkeys(self.streams, ">"),
            count=self.count,
            block_ms=block_ms,
            group=GROUP,
            consumer=self.name,
            poll_seconds=0.02,  # Redis Cluster only: it cannot block on streams of many slots
        )
        entries = [
            (self.streams[name], entry_id, fields)
            for name, items in (reply or [])
            for entry_id, fields in items
            if fields  # a deleted entry comes back empty; it cannot be persisted
        ]
        await self.persist(entries)
        return len(entries)

    async def claim_stale(self) -> int:
        """Take over what dead (or stuck) consumers were given but never acked, and persist it."""
        claimed = 0
        for name, p in self.streams.items():
            cursor = b"0-0"
            while True:
                reply = await self.redis.xautoclaim(
                    name, GROUP, self.name, self.claim_idle_ms, start_id=cursor, count=500
                )
                cursor, items = reply[0], reply[1]
                entries = [(p, entry_id, fields) for entry_id, fields in items if fields]
                await self.persist(entries)
                claimed += len(entries)
                if cursor in (b"0-0", "0-0"):
                    break
        return claimed

    async def persist(self, entries: Sequence[Entry]) -> None:
        """Write ``entries`` in one transaction, then ack them. An entry that cannot be written
        is found by halving the batch, and quarantined; the others are written."""
        if not entries:
            return
        try:
            batch = Batch(entries)
            async with self.db.acquire() as conn, conn.transaction():
                await batch.write(conn)
                if self.fault is not None:
                    await self.fault("before_commit")
        except POISON as exc:
            if len(entries) == 1:
                await self._quarantine(entries[0], exc)
            else:
                half = len(entries) // 2
                await self.persist(entries[:half])
                await self.persist(entries[half:])
            return
        if self.fault is not None:
            await self.fault("after_commit")
        await self._ack(entries)
        self.persisted += len(entries)

    async def _quarantine(self, entry: Entry, exc: Exception) -> None:
        """Keep an entry that cannot be written, with why, and count it as handled (its stream
        offset moves past it); then ack it."""
        p, raw_id, fields = entry
        ms, seq = parse_id(raw_id)
        error = f"{type(exc).__name__}: {exc}".replace("\x00", "")[:2000]
        async with self.db.acquire() as conn, conn.transaction():
            await ledger.quarantine(
                conn, f"{p}:{raw_id.decode()}", p, msgspec.msgpack.encode(fields), error, ms, seq
            )
        log.error("persister: entry %s of partition %d quarantined: %s", raw_id, p, error)
        await self._ack([entry])
        self.quarantined += 1
        if self.metrics is not None:
            self.metrics.quarantined.inc()

    async def _ack(self, entries: Sequence[Entry]) -> None:
        ids: dict[int, list[bytes]] = defaultdict(list)
        for p, entry_id, _ in entries:
            ids[p].append(entry_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            for p, acked in ids.items():
                pipe.xack(self._stream_of[p], GROUP, *acked)
            await pipe.execute()

    async def persist_range(self, partition: int, first: bytes, last: bytes) -> None:
        """Write the events one script appended, now (OMNISTOCK_ACK=postgres). Not acked here:
        the group delivers them too, and writing them twice changes nothing."""
        items = await self.redis.xrange(keys.stream(partition), min=first, max=last)
        batch = Batch([(partition, entry_id, fields) for entry_id, fields in items])
        async with self.db.acquire() as conn, conn.transaction():
            await batch.write(conn)

    async def drain(self) -> int:
        """Persist everything pending or new, until nothing is left (reconcile, tests, shutdown)."""
        total = await self.claim_stale_now()
        while n := await self.step(None):
            total += n
        return total

    async def claim_stale_now(self) -> int:
        idle, self.claim_idle_ms = self.claim_idle_ms, 0
        try:
            return await self.claim_stale()
        finally:
            self.claim_idle_ms = idle
