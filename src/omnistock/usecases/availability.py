"""Availability: positions of skus across locations (the candidates chosen and ranked by the
handler with the pure rules of domain/locations.py), read in one batch."""

from __future__ import annotations

from collections.abc import Sequence

from omnistock.domain.locations import Location, channel_fence
from omnistock.domain.stock import Position, for_channel
from omnistock.domain.supply import Due
from omnistock.redis.store import StockStore
from omnistock.usecases.caches import LocationCache


class Availability:
    """The availability capability of one process."""

    def __init__(self, store: StockStore, locations: LocationCache) -> None:
        self._store = store
        self._locations = locations

    async def require(self, location_id: str) -> Location:
        """The location, or NotFound."""
        return await self._locations.require(location_id)

    def all_locations(self) -> list[Location]:
        """Every known location, by id."""
        return self._locations.all()

    async def positions(
        self, cells: Sequence[tuple[Location, str]], channel: str | None = None
    ) -> list[Position]:
        """The positions of (location, sku) cells, in order, in one read; with ``channel``, each
        ``available`` and ``status`` is that channel's (the location's fence taken off, as
        reserve.lua holds it)."""
        found = await self._store.get_positions(cells)
        if channel is None:
            return found
        return [
            for_channel(pos, channel_fence(loc, channel), loc.limited_threshold)
            for (loc, _), pos in zip(cells, found, strict=True)
        ]

    async def positions_due(
        self, cells: Sequence[tuple[Location, str]], channel: str | None, by_ms: int
    ) -> tuple[list[Position], list[Due]]:
        """:meth:`positions`, and what is due at each cell by ``by_ms``: the units with an ETA at
        or before it, and the earliest of those ETAs with its units (the incoming schedules'
        range reads ride in the same round trip)."""
        found, due = await self._store.positions_due_next(cells, by_ms)
        if channel is not None:
            found = [
                for_channel(pos, channel_fence(loc, channel), loc.limited_threshold)
                for (loc, _), pos in zip(cells, found, strict=True)
            ]
        return found, due
