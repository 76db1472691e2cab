"""Reservations in Redis: read, hold (reserve.lua), commit, release, extend, expire, and the
due ones for the sweeper."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Unpack

from omnistock.domain.commands import Hold, Idempotency
from omnistock.domain.ids import reservation_partition
from omnistock.domain.reservations import (
    MAX_LIFETIME_SECONDS,
    StoredReservation,
    decode_reservation,
)
from omnistock.redis import keys
from omnistock.redis.runner import ScriptRunner
from omnistock.redis.scripts import NOT_ACTIVE, NOT_DUE, OK, Script


class ReservationOps(ScriptRunner):
    """Reservations: every change through its script."""

    async def get_reservation(self, reservation_id: str) -> StoredReservation | None:
        p = reservation_partition(reservation_id, self.partitions)
        raw = await self.hot.execute_command("HGET", keys.reservation(p, reservation_id), "doc")
        return decode_reservation(raw) if raw is not None else None

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
