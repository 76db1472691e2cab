"""Sourcing holds in Redis (domain/sourcing_holds.py): the record scripts (begin, finish, abort,
replan, fail, claim, release) on the record's partition, the part scripts (hold, undo) on each
part's partition, and ``drive``, the one routine that moves a record forward, used by the serving
path and by the worker's courier alike."""

from __future__ import annotations

from typing import Any

import msgspec

from omnistock.domain.commands import Idempotency
from omnistock.domain.errors import IdempotencyMismatch
from omnistock.domain.ids import reservation_partition, sourcing_partition
from omnistock.domain.reservations import (
    MAX_LIFETIME_SECONDS,
    StoredReservation,
    decode_reservation,
)
from omnistock.domain.sourcing_holds import (
    HoldPart,
    SourcingHold,
    decode_hold,
    encode_hold,
)
from omnistock.redis import keys
from omnistock.redis.runner import ScriptRunner
from omnistock.redis.scripts import (
    HOLD_STATE,
    NO_HOLD,
    NO_LOCATION,
    NOT_ACTIVE,
    NOT_DUE,
    OK,
    SHORTAGE,
    VOID,
    Reply,
    Script,
)

# A void marker outlives any late hold of its part: no reservation lives longer than this.
VOID_TTL_MS = MAX_LIFETIME_SECONDS * 1000
_decode_shortages = msgspec.json.Decoder(list[tuple[str, int, int]]).decode
_encode = msgspec.json.Encoder().encode


class Driven(msgspec.Struct, kw_only=True):
    """Where ``drive`` left a hold: its record as last seen, and the shortages of the part that
    could not be held (when one could not). ``record.status`` is ``held`` (done),
    ``compensating`` with every part of the attempt undone (the caller re-plans or fails it), or
    whatever another driver moved it to meanwhile."""

    record: SourcingHold
    shortages: list[tuple[str, int, int]] = msgspec.field(default_factory=list)
    # The parts' reservations as their holds answered (every part, when it ended held).
    held: list[StoredReservation] = msgspec.field(default_factory=list)


class SourcingHoldOps(ScriptRunner):
    """Sourcing hold records and parts: every change through its script."""

    lease_ms: int = 1000

    async def get_hold(self, hold_id: str) -> SourcingHold | None:
        """The record, or None (unknown, malformed id, or past retention)."""
        p = sourcing_partition(hold_id, self.partitions)
        raw = await self.hot.execute_command("HGET", keys.sourcing_hold(p, hold_id), "doc")
        return decode_hold(raw) if raw is not None else None

    async def claim_key(self, idem: Idempotency | None) -> None:
        """Bind an Idempotency-Key to this request's body (reuse with another body: 422)."""
        await self._claim(idem)

    async def recorded_hold_id(self, p: int, idem: Idempotency) -> str | None:
        """The id of the hold an earlier call with this Idempotency-Key began (its begin
        script's recorded reply), or None when there was none."""
        raw = await self.hot.execute_command("GET", keys.idempotency_record(p, idem.digest))
        if raw is None:
            return None
        body_hash, code, _first, _last, payload = raw.decode().split("\n", 4)
        if body_hash != idem.body_hash:
            raise IdempotencyMismatch(
                "this Idempotency-Key was first used with a different request; use a new key"
            )
        return payload if int(code) == OK else None

    async def begin_hold(
        self,
        p: int,
        record: SourcingHold,
        idem: Idempotency | None,
        shortages: list[tuple[str, int, int]] | None = None,
    ) -> tuple[str, bool]:
        """Record a new hold (pending, attempt 1; with ``shortages``: failed at once) in
        partition ``p``; its id and whether this was a replay (then the id is the one first
        recorded)."""
        await self._claim(idem)
        reply = await self._run(
            self.scripts.sourcing_begin,
            p,
            [
                keys.stream(p),
                self._idem_key(p, idem),
                keys.sourcing_hold(p, record.id),
                keys.sourcing_pending(p),
            ],
            [
                *self._args(record.actor, idem),
                encode_hold(record),
                self.lease_ms,
                _encode(shortages) if shortages else "",
                self._retention_ms,
            ],
            record.id,
        )
        return reply.payload.decode(), reply.replayed

    async def hold_part(self, record: SourcingHold, part: HoldPart) -> Reply:
        """Hold one part (a replay answers the reservation already held while it is active);
        the reply, OK, SHORTAGE, VOID, NOT_ACTIVE (held once, ended since) or NO_LOCATION."""
        p = reservation_partition(part.reservation, self.partitions)
        req = record.request
        args: list[Any] = [
            *self._args(record.actor, None),
            part.reservation,
            part.location,
            req.ttl_ms,
            req.channel or "",
            req.ref or "",
            record.owner or "",
            record.owner_role or "",
            record.id,
        ]
        for sku, qty in part.lines:
            args += [sku, qty]
        return await self._run(
            self.scripts.sourcing_hold,
            p,
            self._part_keys(p, part),
            args,
            part.reservation,
            tolerate=(SHORTAGE, VOID, NOT_ACTIVE, NO_LOCATION),
            gated=False,  # the record is begun: finishing it must not be held back
        )

    async def undo_part(self, part: HoldPart, actor: str) -> str:
        """Release the part's reservation, or void its id when it was never held; what was done."""
        p = reservation_partition(part.reservation, self.partitions)
        reply = await self._run(
            self.scripts.sourcing_undo,
            p,
            self._part_keys(p, part),
            [*self._args(actor, None), self._retention_ms, VOID_TTL_MS],
            part.reservation,
            gated=False,  # compensation returns stock: never held back
        )
        return reply.payload.decode()

    async def finish_hold(self, record: SourcingHold, actor: str) -> Reply:
        return await self._on_record(
            self.scripts.sourcing_finish, record.id, actor, [record.attempt, self._retention_ms]
        )

    async def abort_hold(self, record: SourcingHold, actor: str) -> Reply:
        return await self._on_record(
            self.scripts.sourcing_abort, record.id, actor, [record.attempt, self.lease_ms]
        )

    async def replan_hold(
        self, record: SourcingHold, parts: list[HoldPart], why: str, actor: str
    ) -> Reply:
        """compensating -> pending with ``parts`` as the next attempt."""
        return await self._on_record(
            self.scripts.sourcing_replan,
            record.id,
            actor,
            [record.attempt, self.lease_ms, _encode(parts), why],
        )

    async def fail_hold(
        self, record: SourcingHold, shortages: list[tuple[str, int, int]], actor: str
    ) -> Reply:
        return await self._on_record(
            self.scripts.sourcing_fail,
            record.id,
            actor,
            [record.attempt, self._retention_ms, _encode(shortages)],
        )

    async def claim_hold(self, hold_id: str, actor: str) -> SourcingHold | None:
        """Take over a hold whose lease has passed (the courier); None when it is not due, is
        finished, or is gone."""
        reply = await self._on_record(
            self.scripts.sourcing_claim, hold_id, actor, [hold_id, self.lease_ms]
        )
        return decode_hold(reply.payload) if reply.code == OK else None

    async def release_hold(
        self, record: SourcingHold, actor: str, *, restore: bool = False
    ) -> Reply:
        """held -> released (after the caller released the parts); released: answered again.
        ``restore``: Redis no longer has the record, ``record`` is Postgres' copy."""
        return await self._on_record(
            self.scripts.sourcing_release,
            record.id,
            actor,
            [self._retention_ms, encode_hold(record) if restore else ""],
        )

    async def due_holds(self, limit_per_partition: int) -> list[str]:
        """Ids of unfinished holds whose lease has passed (by the Redis clock)."""
        seconds, micros = await self.client.time()
        now = seconds * 1000 + micros // 1000
        async with self.client.pipeline(transaction=False) as pipe:
            for p in range(self.partitions):
                pipe.zrangebyscore(
                    keys.sourcing_pending(p), "-inf", now, start=0, num=limit_per_partition
                )
            found = await pipe.execute()
        return [hid.decode() for ids in found for hid in ids]

    async def drive(self, record: SourcingHold, actor: str) -> Driven:
        """Move ``record`` forward: pending -> hold every part in order; all held -> held; a part
        short or void -> compensating and every part of the attempt undone. A compensating record
        has its parts undone. Another driver's move wins (the record scripts check status and
        attempt); then the record is returned as that driver left it."""
        shortages: list[tuple[str, int, int]] = []
        held: list[StoredReservation] = []
        if record.status == "pending":
            lost = False
            for part in record.parts:
                reply = await self.hold_part(record, part)
                if reply.code == OK:
                    held.append(decode_reservation(reply.payload))
                    continue
                if reply.code == SHORTAGE:
                    shortages = _decode_shortages(reply.payload)
                else:  # void, ended, or the location is gone: it cannot count as held
                    shortages = [(sku, qty, 0) for sku, qty in part.lines]
                lost = True
                break
            if not lost:
                done = await self.finish_hold(record, actor)
                if done.code == OK:
                    return Driven(record=decode_hold(done.payload), held=held)
                return Driven(record=await self._current(record))
            aborted = await self.abort_hold(record, actor)
            if aborted.code != OK:
                return Driven(record=await self._current(record), shortages=shortages)
            record = decode_hold(aborted.payload)
        if record.status == "compensating":
            for part in record.parts:
                await self.undo_part(part, actor)
        return Driven(record=record, shortages=shortages)

    async def _current(self, record: SourcingHold) -> SourcingHold:
        return await self.get_hold(record.id) or record

    async def _on_record(self, script: Script, hold_id: str, actor: str, extra: list[Any]) -> Reply:
        p = sourcing_partition(hold_id, self.partitions)
        return await self._run(
            script,
            p,
            [
                keys.stream(p),
                keys.unused_idempotency_record(p),
                keys.sourcing_hold(p, hold_id),
                keys.sourcing_pending(p),
            ],
            [*self._args(actor, None), *extra],
            hold_id,
            tolerate=(HOLD_STATE, NO_HOLD, NOT_DUE, VOID),
            gated=False,
        )

    def _args(self, actor: str, idem: Idempotency | None) -> list[Any]:
        return [actor, *self._idem_args(idem)]

    def _part_keys(self, p: int, part: HoldPart) -> list[str]:
        """The reservation layout of _lib.lua, then the part's void marker last."""
        return [
            keys.stream(p),
            keys.unused_idempotency_record(p),
            keys.reservation(p, part.reservation),
            keys.expiries(p),
            keys.location_meta(p, part.location),
            keys.sku_index(p, part.location),
            *(keys.position(p, part.location, sku) for sku, _ in part.lines),
            keys.sourcing_void(p, part.reservation),
        ]
