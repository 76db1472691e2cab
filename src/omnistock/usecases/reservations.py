"""Reservations: hold stock, then commit, release or extend. Redis holds the live ones; one it no
longer keeps (finished past retention, or not restored by a rebuild) comes from Postgres."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from omnistock.domain.commands import IdemOf
from omnistock.domain.errors import NotActive, NotFound
from omnistock.domain.ids import new_reservation_id
from omnistock.domain.reservations import StoredReservation, decode_reservation
from omnistock.domain.roles import Principal, may_see_reservation, require_reserve
from omnistock.metrics import Metrics
from omnistock.postgres import ledger
from omnistock.redis.store import StockStore
from omnistock.usecases.caches import LocationCache


def _not_found(reservation_id: str) -> NotFound:
    return NotFound(f"reservation {reservation_id!r} not found")


def _visible(who: Principal, doc: StoredReservation) -> StoredReservation:
    """``doc``, or the same 404 as for an id that does not exist when it is not ``who``'s to see
    (a storefront key's reservation: API.md "Roles (additions)")."""
    if not may_see_reservation(who, doc.location, doc.owner, doc.owner_role):
        raise _not_found(doc.id)
    return doc


class Reservations:
    """The reservations capability of one process."""

    def __init__(
        self,
        db: asyncpg.Pool,
        store: StockStore,
        locations: LocationCache,
        metrics: Metrics,
        default_ttl_seconds: int,
    ) -> None:
        self._db = db
        self._store = store
        self._locations = locations
        self._metrics = metrics
        self._default_ttl = default_ttl_seconds

    async def create(
        self,
        who: Principal,
        location: str,
        lines: Sequence[tuple[str, int]],
        ttl_seconds: int | None,
        channel: str | None,
        ref: str | None,
        allow_partial: bool,
        idem: IdemOf,
    ) -> tuple[StoredReservation, bool]:
        """Hold ``lines`` (distinct skus) at ``location``; the reservation and whether it replayed."""
        require_reserve(who, location)
        await self._locations.require(location)
        key = idem()
        doc, replayed = await self._store.reserve(
            reservation_id=new_reservation_id(self._store.partition(location)),
            location=location,
            lines=lines,
            ttl_seconds=ttl_seconds or self._default_ttl,
            channel=channel,
            ref=ref,
            allow_partial=allow_partial,
            actor=who.name,
            idem=key,
            owner=who.id,
            owner_role=who.role.value,
        )
        self._metrics.reservations.inc(outcome="held")
        return doc, replayed

    async def get(self, who: Principal, reservation_id: str) -> StoredReservation:
        """The reservation as ``who`` may see it (else 404)."""
        doc = await self._store.get_reservation(reservation_id)
        if doc is None:
            return await self._from_postgres(who, reservation_id)
        return _visible(who, doc)

    async def commit(
        self,
        who: Principal,
        reservation_id: str,
        lines: Sequence[tuple[str, int]] | None,
        idem: IdemOf,
    ) -> tuple[StoredReservation, bool]:
        """Commit all held units, or ``lines`` of them."""
        doc = await self._find_live(who, reservation_id)
        return await self._store.commit(doc, lines, who.name, idem())

    async def release(
        self, who: Principal, reservation_id: str, idem: IdemOf
    ) -> tuple[StoredReservation, bool]:
        """Release everything held."""
        doc = await self._find_live(who, reservation_id)
        return await self._store.release(doc, who.name, idem())

    async def extend(
        self, who: Principal, reservation_id: str, ttl_seconds: int, idem: IdemOf
    ) -> tuple[StoredReservation, bool]:
        """Move expires_at to now + ``ttl_seconds`` (within the ceiling the script checks)."""
        doc = await self._find_live(who, reservation_id)
        return await self._store.extend(doc, ttl_seconds, who.name, idem())

    async def _from_postgres(self, who: Principal, reservation_id: str) -> StoredReservation:
        raw = await ledger.reservation_doc(self._db, reservation_id)
        if raw is None:
            raise _not_found(reservation_id)
        return _visible(who, decode_reservation(raw))

    async def _find_live(self, who: Principal, reservation_id: str) -> StoredReservation:
        """For commit, release and extend: the reservation in Redis, where its scripts act (and
        replay); one only Postgres still has is no longer active. Ownership is checked before
        anything else is said about it; it never changes, so the script need not check it again."""
        doc = await self._store.get_reservation(reservation_id)
        if doc is not None:
            doc = _visible(who, doc)
            require_reserve(who, doc.location)
            return doc
        doc = await self._from_postgres(who, reservation_id)
        require_reserve(who, doc.location)
        raise NotActive(
            f"reservation {reservation_id} is {doc.status}, no longer active",
            reservation_status=doc.status,
        )
