"""Typed operations on the live state: reads, and every mutation through its Lua script."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Unpack

import msgspec

from omnistock.domain import stock
from omnistock.domain.clock import rfc3339
from omnistock.domain.commands import Adjustment, Count, Hold, Idempotency
from omnistock.domain.errors import IdempotencyMismatch
from omnistock.domain.ids import partition_of, reservation_partition
from omnistock.domain.locations import Location
from omnistock.domain.reservations import (
    MAX_LIFETIME_SECONDS,
    StoredReservation,
    decode_reservation,
)
from omnistock.redis import keys
from omnistock.redis.multiplex import Multiplexer
from omnistock.redis.scripts import (
    NOT_ACTIVE,
    NOT_DUE,
    OK,
    QUANTITY,
    Reply,
    Script,
    Scripts,
    check,
)
from omnistock.settings import Settings

_POSITION_FIELDS = ("oh", "r", "ss", "v", "ts")


class PositionRow(msgspec.Struct, array_like=True):
    """A position as the scripts return it."""

    location: str
    sku: str
    on_hand: int
    reserved: int
    safety_stock: int
    available: int
    status: stock.Status
    version: int
    ts: int

    def public(self) -> stock.Position:
        return stock.Position(
            sku=self.sku,
            location=self.location,
            on_hand=self.on_hand,
            reserved=self.reserved,
            safety_stock=self.safety_stock,
            available=self.available,
            status=self.status,
            version=self.version,
            updated_at=rfc3339(self.ts) if self.version else None,
        )


_decode_rows = msgspec.json.Decoder(list[PositionRow]).decode


_pack = msgspec.msgpack.Encoder().encode
_encode = msgspec.json.Encoder().encode
_decode_list = msgspec.json.Decoder(list[Any]).decode


def _in_order(
    groups: dict[int, list[int]], replies: Sequence[Reply], count: int
) -> tuple[list[stock.Position], bool]:
    """The positions the per-partition calls returned, in input order (none when not asked for),
    and whether every call replayed a recorded reply."""
    if not replies:
        return [], False
    replayed = all(reply.replayed for reply in replies)
    if not replies[0].payload:  # positions not asked for
        return [], replayed
    out: list[stock.Position] = [None] * count  # type: ignore[list-item]
    for indexes, reply in zip(groups.values(), replies, strict=True):
        for index, row in zip(indexes, _decode_rows(reply.payload), strict=True):
            out[index] = row.public()
    return out, replayed


async def _each_partition(
    groups: dict[int, list[int]], run: Callable[[int, list[int]], Awaitable[Reply]]
) -> list[Reply]:
    """``run`` for each partition's indexes, concurrently; the replies in ``groups`` order."""
    if len(groups) == 1:  # an import's batch, a single-location request: no task to start
        ((p, indexes),) = groups.items()
        return [await run(p, indexes)]
    return list(await asyncio.gather(*(run(p, indexes) for p, indexes in groups.items())))


def _int(raw: bytes | None) -> int:
    return int(raw) if raw is not None else 0


def position_from_fields(location: Location, sku: str, fields: Sequence[Any]) -> stock.Position:
    """A position from an HMGET of ``_POSITION_FIELDS`` (all None when it does not exist)."""
    on_hand, reserved, own_ss, version, ts = fields
    return stock.position(
        location=location.id,
        sku=sku,
        on_hand=_int(on_hand),
        reserved=_int(reserved),
        safety_stock=int(own_ss) if own_ss is not None else location.safety_stock,
        limited_threshold=location.limited_threshold,
        version=_int(version),
        updated_at=rfc3339(int(ts)) if version is not None and ts is not None else None,
    )


class StockStore:
    """The live stock and reservations in Redis, for one process. Request-path commands (reads,
    scripts, idempotency claims) go through ``hot``, the process's pipelined connection; bulk and
    background commands through ``client``, redis-py's pool."""

    def __init__(
        self,
        client: Any,
        hot: Multiplexer,
        scripts: Scripts,
        *,
        partitions: int,
        idempotency_ttl_seconds: int,
        retention_seconds: int,
    ) -> None:
        self.client = client
        self.hot = hot
        self.scripts = scripts
        self.partitions = partitions
        self._idem_ttl_ms = idempotency_ttl_seconds * 1000
        self._retention_ms = retention_seconds * 1000
        # Called with (partition, first id, last id) of the events each script appended; with
        # OMNISTOCK_ACK=postgres it writes them to Postgres before the caller answers.
        self.on_written: Callable[[int, bytes, bytes], Awaitable[None]] | None = None
        # Called before every mutation but expiry; raises to refuse it (back-pressure).
        self.gate: Callable[[], None] | None = None

    @classmethod
    def from_settings(
        cls, settings: Settings, client: Any, hot: Multiplexer, scripts: Scripts
    ) -> StockStore:
        """The store a serving or CLI process uses, as its settings configure it."""
        return cls(
            client,
            hot,
            scripts,
            partitions=settings.partitions,
            idempotency_ttl_seconds=settings.idempotency_ttl_seconds,
            retention_seconds=settings.finished_reservation_retention_seconds,
        )

    def partition(self, location_id: str) -> int:
        return partition_of(location_id, self.partitions)

    # -- locations ------------------------------------------------------------------------------

    async def put_location_meta(self, locations: Iterable[Location]) -> None:
        """Copy what the scripts need of each location (safety stock, limited threshold)."""
        async with self.client.pipeline(transaction=False) as pipe:
            for loc in locations:
                key = keys.location_meta(self.partition(loc.id), loc.id)
                pipe.hset(key, mapping={"ss": loc.safety_stock, "lt": loc.limited_threshold})
            await pipe.execute()

    # -- reads ----------------------------------------------------------------------------------

    async def get_position(self, location: Location, sku: str) -> stock.Position:
        key = keys.position(self.partition(location.id), location.id, sku)
        return position_from_fields(
            location, sku, await self.hot.execute_command("HMGET", key, *_POSITION_FIELDS)
        )

    async def get_positions(self, cells: Sequence[tuple[Location, str]]) -> list[stock.Position]:
        """Many positions in one round trip."""
        if len(cells) == 1:
            return [await self.get_position(*cells[0])]
        rows = await self.hot.execute_many(
            [
                ("HMGET", keys.position(self.partition(loc.id), loc.id, sku), *_POSITION_FIELDS)
                for loc, sku in cells
            ]
        )
        return [
            position_from_fields(loc, sku, row) for (loc, sku), row in zip(cells, rows, strict=True)
        ]

    async def skus_at(self, location: Location) -> list[str]:
        """Every sku with a position at ``location``, sorted."""
        members = await self.client.smembers(
            keys.sku_index(self.partition(location.id), location.id)
        )
        return sorted(m.decode() for m in members)

    async def get_reservation(self, reservation_id: str) -> StoredReservation | None:
        p = reservation_partition(reservation_id, self.partitions)
        raw = await self.hot.execute_command("HGET", keys.reservation(p, reservation_id), "doc")
        return decode_reservation(raw) if raw is not None else None

    # -- stock mutations ------------------------------------------------------------------------

    async def adjust(
        self, items: Sequence[Adjustment], actor: str, idem: Idempotency | None
    ) -> tuple[list[stock.Position], bool]:
        """Apply deltas; one script call per partition. Returns positions in input order."""
        await self._claim(idem)

        groups = self._by_partition(items)
        if len(groups) > 1:
            await self._check_caps(items)

        async def run(p: int, indexes: list[int]) -> Reply:
            script_keys = [keys.stream(p), self._idem_key(p, idem)]
            script_args = [actor, *self._idem_args(idem)]
            for index in indexes:
                item = items[index]
                script_keys += [
                    keys.position(p, item.location, item.sku),
                    keys.sku_index(p, item.location),
                    keys.location_meta(p, item.location),
                ]
                script_args += [item.location, item.sku, item.delta, item.reason, item.ref or ""]
            reply = await self._run(
                self.scripts.adjust, p, script_keys, script_args, "", tolerate=(QUANTITY,)
            )
            if reply.code == QUANTITY:  # the script names its item in the call: name ours
                index, field, value = _decode_list(reply.payload)
                reply = reply._replace(payload=_encode([indexes[index], field, value]))
            return check(reply, "adjustments")

        return _in_order(groups, await _each_partition(groups, run), len(items))

    async def _check_caps(self, items: Sequence[Adjustment]) -> None:
        """Partitions' scripts run apart, so one refusing a result past the quantity cap would
        leave the others applied: check every result first (one round trip). Each script checks
        again, atomically, before it writes."""
        cells = list(dict.fromkeys((item.location, item.sku) for item in items))
        found = await self.hot.execute_many(
            [("HGET", keys.position(self.partition(loc), loc, sku), "oh") for loc, sku in cells]
        )
        running = {cell: _int(raw) for cell, raw in zip(cells, found, strict=True)}
        for index, item in enumerate(items):
            cell = (item.location, item.sku)
            running[cell] += item.delta
            if abs(running[cell]) > stock.MAX_QUANTITY:
                reply = Reply(QUANTITY, _encode([index, "delta", running[cell]]), False, b"", b"")
                check(reply, "adjustments")

    async def set_counts(
        self,
        items: Sequence[Count],
        actor: str,
        idem: Idempotency | None,
        kind: str = "set",
        *,
        positions: bool = True,
    ) -> tuple[list[stock.Position], bool]:
        """Set absolute on_hand (and own safety stock); unchanged positions emit nothing.
        Without ``positions`` (bulk imports) the resulting positions are not returned, and the
        calls go through the pool: a storefront read waits behind one import batch at most, not
        behind every batch queued on the request connection.
        One script call per partition the items touch (concurrently)."""
        await self._claim(idem)
        groups = self._by_partition(items)

        async def run(p: int, indexes: list[int]) -> Reply:
            script_keys, script_args = self._set_call(
                p, [items[i] for i in indexes], actor, idem, kind, positions
            )
            return await self._run(
                self.scripts.set, p, script_keys, script_args, "", bulk=not positions
            )

        return _in_order(groups, await _each_partition(groups, run), len(items))

    def _by_partition(self, items: Sequence[Adjustment | Count]) -> dict[int, list[int]]:
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

    def _set_call(
        self,
        p: int,
        items: Sequence[Count],
        actor: str,
        idem: Idempotency | None,
        kind: str,
        positions: bool,
    ) -> tuple[list[str], list[Any]]:
        """The KEYS and ARGV of set.lua for items of partition ``p``: each location's keys once,
        a position key per item, and the items as one MessagePack array (see set.lua)."""
        slots: dict[str, int] = {}  # location -> its index in the call
        position_keys: list[str] = []
        rows: list[Any] = []
        for item in items:
            slot = slots.get(item.location)
            if slot is None:
                slot = slots[item.location] = len(slots)
            position_keys.append(keys.position(p, item.location, item.sku))
            ss = item.safety_stock
            rows += (
                slot,
                item.sku,
                item.on_hand,
                "" if ss is None else ("-" if ss < 0 else ss),
                "" if item.expected_version is None else item.expected_version,
                item.reason,
                item.ref or "",
            )
        script_keys = [keys.stream(p), self._idem_key(p, idem)]
        for location in slots:
            script_keys += (keys.location_meta(p, location), keys.sku_index(p, location))
        script_keys += position_keys
        script_args = [
            actor,
            *self._idem_args(idem),
            kind,
            "1" if positions else "0",
            _pack(list(slots)),
            _pack(rows),
        ]
        return script_keys, script_args

    # -- reservations ---------------------------------------------------------------------------

    async def reserve(self, **hold: Unpack[Hold]) -> tuple[StoredReservation, bool]:
        """Hold ``lines`` (distinct skus) at ``location``; raises Shortage when it cannot."""
        await self._claim(hold["idem"])
        script_keys, script_args = self.reserve_call(**hold)
        p = self.partition(hold["location"])
        reply = await self._run(
            self.scripts.reserve, p, script_keys, script_args, hold["reservation_id"]
        )
        return decode_reservation(reply.payload), reply.replayed

    def reserve_call(self, **hold: Unpack[Hold]) -> tuple[list[str], list[Any]]:
        """The KEYS and ARGV of reserve.lua for a hold (also what benchmarks replay)."""
        location, reservation_id, lines = hold["location"], hold["reservation_id"], hold["lines"]
        idem = hold["idem"]
        p = self.partition(location)
        script_keys = [
            keys.stream(p),
            self._idem_key(p, idem),
            keys.reservation(p, reservation_id),
            keys.expiries(p),
            keys.location_meta(p, location),
            keys.sku_index(p, location),
            *(keys.position(p, location, sku) for sku, _ in lines),
        ]
        script_args: list[Any] = [
            hold["actor"],
            *self._idem_args(idem),
            reservation_id,
            location,
            hold["ttl_seconds"] * 1000,
            hold["channel"] or "",
            hold["ref"] or "",
            "1" if hold["allow_partial"] else "0",
            hold.get("owner", ""),
            hold.get("owner_role", ""),
        ]
        for sku, qty in lines:
            script_args += [sku, qty]
        return script_keys, script_args

    async def commit(
        self,
        doc: StoredReservation,
        lines: Sequence[tuple[str, int]] | None,
        actor: str,
        idem: Idempotency | None,
    ) -> tuple[StoredReservation, bool]:
        """Commit all held units, or only ``lines`` (distinct skus; the rest is released)."""
        extra: list[Any] = ["0"]
        if lines is not None:
            extra = ["1"]
            for sku, qty in lines:
                extra += [sku, qty]
        return await self._on_reservation(self.scripts.commit, doc, extra, actor, idem)

    async def release(
        self, doc: StoredReservation, actor: str, idem: Idempotency | None
    ) -> tuple[StoredReservation, bool]:
        return await self._on_reservation(self.scripts.release, doc, [], actor, idem)

    async def extend(
        self, doc: StoredReservation, ttl_seconds: int, actor: str, idem: Idempotency | None
    ) -> tuple[StoredReservation, bool]:
        """Move ``expires_at`` to now + ``ttl_seconds``; past created_at + MAX_LIFETIME_SECONDS
        it is a 422 (the script checks it against the Redis clock)."""
        return await self._on_reservation(
            self.scripts.extend, doc, [ttl_seconds * 1000, MAX_LIFETIME_SECONDS * 1000], actor, idem
        )

    async def expire(self, reservation_id: str, actor: str = "system:expiry") -> bool:
        """Expire a due reservation; False if it was not due or already ended (another sweeper)."""
        p = reservation_partition(reservation_id, self.partitions)
        doc = await self.get_reservation(reservation_id)
        if doc is None:  # gone (retention): nothing to release, forget the expiry entry
            await self.client.zrem(keys.expiries(p), reservation_id)
            return False
        reply = await self._run(
            self.scripts.expire,
            p,
            self._reservation_keys(doc, None),
            [actor, *self._idem_args(None), self._retention_ms],
            reservation_id,
            tolerate=(NOT_DUE, NOT_ACTIVE),
            gated=False,  # expiry returns stock: never held back
        )
        return reply.code == OK

    async def due_reservations(self, limit_per_partition: int = 200) -> list[str]:
        """Ids of active reservations whose expiry has passed (by the Redis clock)."""
        seconds, micros = await self.client.time()
        now = seconds * 1000 + micros // 1000
        async with self.client.pipeline(transaction=False) as pipe:
            for p in range(self.partitions):
                pipe.zrangebyscore(keys.expiries(p), "-inf", now, start=0, num=limit_per_partition)
            found = await pipe.execute()
        return [rid.decode() for ids in found for rid in ids]

    async def _on_reservation(
        self,
        script: Script,
        doc: StoredReservation,
        extra: list[Any],
        actor: str,
        idem: Idempotency | None,
    ) -> tuple[StoredReservation, bool]:
        await self._claim(idem)
        script_args = [actor, *self._idem_args(idem), self._retention_ms, *extra]
        p = reservation_partition(doc.id, self.partitions)
        reply = await self._run(script, p, self._reservation_keys(doc, idem), script_args, doc.id)
        return decode_reservation(reply.payload), reply.replayed

    def _reservation_keys(self, doc: StoredReservation, idem: Idempotency | None) -> list[str]:
        """The KEYS layout shared by the scripts acting on an existing reservation."""
        p = reservation_partition(doc.id, self.partitions)
        return [
            keys.stream(p),
            self._idem_key(p, idem),
            keys.reservation(p, doc.id),
            keys.expiries(p),
            keys.location_meta(p, doc.location),
            keys.sku_index(p, doc.location),
            *(keys.position(p, doc.location, line[0]) for line in doc.lines),
        ]

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
        reply = await script(self.client if bulk else self.hot, script_keys, script_args)
        if reply.first_id and self.on_written is not None:
            await self.on_written(p, reply.first_id, reply.last_id)
        if reply.code in tolerate:
            return reply
        return check(reply, subject)

    # -- idempotency ----------------------------------------------------------------------------

    async def _claim(self, idem: Idempotency | None) -> None:
        """Bind the key to this request's body wherever it acts; reuse with another body: 422."""
        if idem is None:
            return
        first = await self.hot.execute_command(
            "SET", keys.idempotency_claim(idem.digest), idem.body_hash, "NX", "GET",
            "PX", self._idem_ttl_ms,
        )  # fmt: skip
        if first is not None and first.decode() != idem.body_hash:
            raise IdempotencyMismatch(
                "this Idempotency-Key was first used with a different request; use a new key"
            )

    def _idem_key(self, p: int, idem: Idempotency | None) -> str:
        if idem is None:
            return keys.unused_idempotency_record(p)
        return keys.idempotency_record(p, idem.digest)

    def _idem_args(self, idem: Idempotency | None) -> list[Any]:
        if idem is None:
            return ["", self._idem_ttl_ms, ""]
        return [idem.body_hash, self._idem_ttl_ms, idem.key]
