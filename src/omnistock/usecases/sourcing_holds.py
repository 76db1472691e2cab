"""Sourcing holds: plan where an order comes from (the same ranking as /plans) and hold the best
option across its locations, all or nothing; on a lost race the parts are undone and the order is
re-planned from fresh availability (at most MAX_ATTEMPTS attempts). The record, its scripts and
``drive`` are the Redis adapter's (redis/sourcing_holds.py); the courier (worker) finishes what a
crashed caller left."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

import asyncpg
import msgspec

from omnistock.domain.commands import IdemOf
from omnistock.domain.errors import (
    Conflict,
    NotActive,
    NotFound,
    Shortage,
    Unavailable,
    ValidationFailed,
)
from omnistock.domain.ids import new_reservation_id, new_sourcing_id, sourcing_partition
from omnistock.domain.reservations import (
    ShortageLine,
    StoredReservation,
    decode_reservation,
)
from omnistock.domain.roles import (
    Principal,
    Role,
    may_see_reservation,
    require_reserve,
    require_reserver,
)
from omnistock.domain.sourcing import Candidate, Fulfillment, Option, plan
from omnistock.domain.sourcing_holds import (
    FINISHED,
    MAX_ATTEMPTS,
    HoldPart,
    HoldRequest,
    SourcingHold,
    clip_to,
    decode_hold,
    parts_of,
    record_partition,
    summed_shortages,
)
from omnistock.postgres import ledger
from omnistock.redis.scripts import OK
from omnistock.redis.store import StockStore
from omnistock.usecases.sourcing import Sourcing

_POLL_SECONDS = 0.02


class HoldAsk(msgspec.Struct, frozen=True, kw_only=True):
    """What a sourcing hold asks for: the plan body's fields, ttl, ref and allow_partial."""

    lines: Sequence[tuple[str, int]]
    fulfillment: Fulfillment
    near: tuple[float, float] | None = None
    radius_km: float | None = None
    group: str | None = None
    ids: Sequence[str] | None = None
    channel: str | None = None
    max_locations: int = 3
    ttl_seconds: int | None = None
    ref: str | None = None
    allow_partial: bool = False


class HeldView(msgspec.Struct, kw_only=True):
    """A hold as the use case answers it: the record and each part's current reservation."""

    record: SourcingHold
    parts: list[StoredReservation]


def _shortage(lines: Sequence[tuple[str, int, int]]) -> Shortage:
    """The 409 of a hold no option could be held for."""
    items = [ShortageLine(sku=s, requested=r, available=a) for s, r, a in lines]
    names = ", ".join(f"{i.sku} (requested {i.requested}, available {i.available})" for i in items)
    return Shortage(
        f"no option can be held: {names or 'a part was undone'}; available is the channel "
        "availability summed over every candidate location",
        shortages=items,
    )


def _not_found(hold_id: str) -> NotFound:
    return NotFound(f"sourcing reservation {hold_id!r} not found")


class SourcingHolds:
    """The sourcing hold capability of one process."""

    def __init__(
        self,
        db: asyncpg.Pool,
        store: StockStore,
        sourcing: Sourcing,
        *,
        default_ttl_seconds: int,
        replay_wait_seconds: float,
    ) -> None:
        self._db = db
        self._store = store
        self._sourcing = sourcing
        self._default_ttl = default_ttl_seconds
        self._replay_wait = replay_wait_seconds

    async def create(self, who: Principal, ask: HoldAsk, idem: IdemOf) -> tuple[HeldView, bool]:
        """Hold the best option; the hold and whether it is a replay. No option: 409."""
        require_reserver(who)
        if ask.allow_partial and ask.fulfillment == "pickup":
            raise ValidationFailed("allow_partial", "only with fulfillment ship")
        key = idem()
        store = self._store
        p: int | None = None
        if key is not None:
            await store.claim_key(key)
            p = record_partition(key.digest, store.partitions)
            earlier = await store.recorded_hold_id(p, key)
            if earlier is not None:
                return await self._replay(who, earlier), True
        order, option, cands = await self._replan(who, ask)
        ttl = ask.ttl_seconds or self._default_ttl
        record = SourcingHold(
            id="",
            status="pending",
            attempt=1,
            request=HoldRequest(
                lines=list(order),
                fulfillment=ask.fulfillment,
                ttl_ms=ttl * 1000,
                allow_partial=ask.allow_partial,
                channel=ask.channel,
                ref=ask.ref,
            ),
            parts=[] if option is None else self._parts(option),
            why="no option" if option is None else option.why,
            actor=who.name,
            created_at=0,
            updated_at=0,
            lease_until=0,
            owner=who.id,
            owner_role=who.role.value,
        )
        if option is None:
            shortages = summed_shortages(order, [c.available for c in cands])
            if p is None:  # nothing to record: without a key a retry plans afresh
                raise _shortage(shortages)
            # Recorded as failed, so a replay answers this same 409.
            record.id, record.status = new_sourcing_id(p), "failed"
            hold_id, replayed = await store.begin_hold(p, record, key, shortages)
            if replayed:
                return await self._replay(who, hold_id), True
            raise _shortage(shortages)
        if p is None:
            p = store.partition(record.parts[0].location)
        record.id = new_sourcing_id(p)
        hold_id, replayed = await store.begin_hold(p, record, key)
        if replayed:  # the same key's call began it meanwhile
            return await self._replay(who, hold_id), True
        while True:
            driven = await store.drive(record, who.name)
            current = driven.record
            if current.status == "held":
                return HeldView(record=current, parts=driven.held), False
            if current.status != "compensating" or current.attempt != record.attempt:
                break  # another driver (the courier) moved it: its outcome is the answer
            order, next_option, cands = await self._replan(who, ask)
            if next_option is None or current.attempt >= MAX_ATTEMPTS:
                shortages = summed_shortages(order, [c.available for c in cands])
                failed = await store.fail_hold(current, shortages, who.name)
                if failed.code == OK:
                    raise _shortage(shortages)
                break
            moved = await store.replan_hold(
                current, self._parts(next_option), next_option.why, who.name
            )
            if moved.code != OK:
                break
            record = decode_hold(moved.payload)
        return await self._outcome(who, hold_id, replayed=False), False

    async def get(self, who: Principal, hold_id: str) -> HeldView:
        """The hold with each part's current reservation (404 unless ``who`` may see it)."""
        return await self._view(await self._visible(who, hold_id))

    async def release(self, who: Principal, hold_id: str, idem: IdemOf) -> tuple[HeldView, bool]:
        """Release every active part, then the hold; a released hold answers again (replayed)."""
        record = await self._visible(who, hold_id)
        require_reserver(who)
        for part in record.parts:
            require_reserve(who, part.location)
        await self._store.claim_key(idem())
        in_redis = await self._store.get_hold(hold_id) is not None
        if record.status not in FINISHED and in_redis:
            record = await self._settled(hold_id)
        if record.status == "released":
            return await self._view(record), True
        if record.status != "held":
            raise Conflict(
                f"sourcing reservation {hold_id} is {record.status}; nothing to release",
                sourcing_status=record.status,
            )
        for part in record.parts:
            doc = await self._store.get_reservation(part.reservation)
            if doc is not None and doc.status == "active":
                with contextlib.suppress(NotActive):  # it ended meanwhile (expiry, commit)
                    await self._store.release(doc, who.name, None)
        done = await self._store.release_hold(record, who.name, restore=not in_redis)
        if done.code == OK:
            return await self._view(decode_hold(done.payload)), done.replayed
        current = await self._store.get_hold(hold_id) or record
        raise Conflict(
            f"sourcing reservation {hold_id} is {current.status}; nothing to release",
            sourcing_status=current.status,
        )

    # --------------------------------------------------------------------------------------
    async def _replan(
        self, who: Principal, ask: HoldAsk
    ) -> tuple[list[tuple[str, int]], Option | None, list[Candidate]]:
        """Read fresh availability and rank (the ranking of /plans); the best option or None.
        With allow_partial an order no option covers is cut to what the candidates hold."""
        order, cands = await self._sourcing.candidates(
            who, ask.lines, ask.fulfillment, near=ask.near, radius_km=ask.radius_km,
            group=ask.group, ids=ask.ids, channel=ask.channel,
        )  # fmt: skip
        ranked = plan(order, ask.fulfillment, cands, max_locations=ask.max_locations, limit=1)
        if not ranked.options and ask.allow_partial:
            clipped = clip_to(order, [c.available for c in cands])
            if clipped:
                ranked = plan(
                    clipped, ask.fulfillment, cands, max_locations=ask.max_locations, limit=1
                )
        return order, (ranked.options[0] if ranked.options else None), cands

    def _parts(self, option: Option) -> list[HoldPart]:
        store = self._store
        return parts_of(
            [
                (a.location, a.distance_km, [(line.sku, line.qty) for line in a.lines])
                for a in option.allocations
            ],
            lambda loc: new_reservation_id(store.partition(loc)),
        )

    async def _settled(self, hold_id: str) -> SourcingHold:
        """The record once finished (its driver or the courier moves it on within about a
        lease); 503 when it is not within the replay wait."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._replay_wait
        while True:
            record = await self._store.get_hold(hold_id)
            if record is None:
                raise _not_found(hold_id)
            if record.status in FINISHED:
                return record
            if loop.time() >= deadline:
                raise Unavailable(
                    f"sourcing reservation {hold_id} is still {record.status}; retry in a moment"
                )
            await asyncio.sleep(_POLL_SECONDS)

    async def _outcome(self, who: Principal, hold_id: str, *, replayed: bool) -> HeldView:
        """The answer a finished hold gives: held (or released) -> the hold; failed -> 409."""
        record = await self._settled(hold_id)
        if record.status == "failed":
            error = _shortage(record.shortages or [])
            error.replayed = replayed
            raise error
        return await self._view(record)

    async def _replay(self, who: Principal, hold_id: str) -> HeldView:
        return await self._outcome(who, hold_id, replayed=True)

    async def _visible(self, who: Principal, hold_id: str) -> SourcingHold:
        sourcing_partition(hold_id, self._store.partitions)  # 404 for a malformed id
        record = await self._store.get_hold(hold_id)
        if record is None:  # past its time in Redis: Postgres keeps every record
            raw = await ledger.sourcing_hold_doc(self._db, hold_id)
            if raw is None:
                raise _not_found(hold_id)
            record = decode_hold(raw)
        if record.parts:
            seen = any(
                may_see_reservation(who, part.location, record.owner, record.owner_role)
                for part in record.parts
            )
        else:  # failed at once, at no location: its key and those that see everything
            seen = who.id == record.owner or who.role in (Role.ADMIN, Role.INTEGRATION)
        if not seen:
            raise _not_found(hold_id)
        return record

    async def _view(self, record: SourcingHold) -> HeldView:
        parts = []
        for part in record.parts:
            doc = await self._store.get_reservation(part.reservation)
            if doc is None:
                raw = await ledger.reservation_doc(self._db, part.reservation)
                doc = decode_reservation(raw) if raw is not None else None
            if doc is not None:
                parts.append(doc)
        return HeldView(record=record, parts=parts)
