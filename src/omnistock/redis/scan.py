"""Walking the positions of a location a page at a time (SSCAN of its sku index + HMGETs), so a
location with any number of skus is never held in memory whole."""

from __future__ import annotations

from collections.abc import AsyncIterator

from omnistock.domain.locations import Location
from omnistock.domain.stock import Position
from omnistock.redis import keys
from omnistock.redis.store import StockStore


async def position_page(
    store: StockStore, location: Location, cursor: int, count: int, match: str | None = None
) -> tuple[int, list[Position]]:
    """One SSCAN step from ``cursor`` (0 starts): the next cursor (0 when done) and the
    positions found, read in one pipeline. ``match`` is a glob on the sku. A step may find
    nothing, or (rarely, while the set grows) a sku already seen."""
    index = keys.sku_index(store.partition(location.id), location.id)
    next_cursor, members = await store.client.sscan(index, cursor, match=match, count=count)
    skus = sorted(m.decode() for m in members)
    return int(next_cursor), await store.get_positions([(location, sku) for sku in skus])


async def positions_of(
    store: StockStore, location: Location, chunk: int = 1000
) -> AsyncIterator[list[Position]]:
    """Every position of ``location``, in chunks of about ``chunk``."""
    cursor = 0
    while True:
        cursor, found = await position_page(store, location, cursor, chunk)
        if found:
            yield found
        if cursor == 0:
            return
