"""A location's positions, a page at a time (never held whole in memory)."""

from __future__ import annotations

from omnistock.domain.stock import Position
from omnistock.redis.scan import position_page
from omnistock.redis.store import StockStore
from omnistock.usecases.caches import LocationCache


class Positions:
    """The positions-listing capability of one process."""

    def __init__(self, store: StockStore, locations: LocationCache) -> None:
        self._store = store
        self._locations = locations

    async def page(
        self, location_id: str, cursor: int, limit: int, match: str | None
    ) -> tuple[list[Position], int]:
        """About ``limit`` positions from ``cursor`` (0 starts) whose sku matches the glob
        ``match``, sorted by sku, and the next cursor (0: done). NotFound for an unknown location."""
        location = await self._locations.require(location_id)
        items = list[Position]()
        while True:
            cursor, found = await position_page(
                self._store, location, cursor, max(limit, 1000) if match else limit, match
            )
            items += found
            if cursor == 0 or len(items) >= limit:
                break
        items.sort(key=lambda p: p.sku)
        return items, cursor
