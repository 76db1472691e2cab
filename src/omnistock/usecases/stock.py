"""Stock: read a position, set on_hand absolutely (a count), apply deltas (adjustments). Every
location named must exist; the scripts do the rest atomically."""

from __future__ import annotations

from collections.abc import Sequence

from omnistock.domain.commands import Adjustment, Count, IdemOf, Move
from omnistock.domain.stock import Position
from omnistock.redis.store import StockStore
from omnistock.usecases.caches import LocationCache


class Stock:
    """The stock capability of one process."""

    def __init__(self, store: StockStore, locations: LocationCache) -> None:
        self._store = store
        self._locations = locations

    async def position(self, location_id: str, sku: str) -> Position:
        """One position (version 0 when it never existed); NotFound for an unknown location."""
        loc = await self._locations.require(location_id)
        return await self._store.get_position(loc, sku)

    async def count(self, count: Count, actor: str, idem: IdemOf) -> tuple[Position, bool]:
        """Set one position's on_hand; the position and whether the reply was replayed."""
        await self._locations.require(count.location)
        (pos,), replayed = await self._store.set_counts([count], actor, idem())
        return pos, replayed

    async def adjust(
        self, items: Sequence[Adjustment], actor: str, idem: IdemOf
    ) -> tuple[list[Position], bool]:
        """Apply every delta or none; the positions and whether the reply was replayed."""
        for item in items:
            await self._locations.require(item.location)
        return await self._store.adjust(items, actor, idem())

    async def move(
        self, items: Sequence[Move], actor: str, idem: IdemOf
    ) -> tuple[list[Position], bool]:
        """Move units between sellable and unsellable (each partition's items all or none; more
        than the source state holds: Shortage); the positions and whether replayed."""
        for item in items:
            await self._locations.require(item.location)
        return await self._store.move(items, actor, idem())
