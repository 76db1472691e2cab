"""Google's local product inventory feed: one tab-separated row per position.

Columns ``store_code`` (the location id), ``id`` (the sku), ``quantity`` (what can be promised:
``available``) and ``availability``, Google's name for the position's status.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

from omnistock.domain.locations import Location
from omnistock.domain.stock import Position, Status
from omnistock.redis.scan import positions_of
from omnistock.redis.store import StockStore

MEDIA_TYPE = "text/tab-separated-values; charset=utf-8"
COLUMNS = ("store_code", "id", "quantity", "availability")
HEADER = "\t".join(COLUMNS) + "\n"
AVAILABILITY: dict[Status, str] = {
    "in_stock": "in_stock",
    "limited": "limited_availability",
    "out_of_stock": "out_of_stock",
}


def row(location: str, sku: str, available: int, status: Status) -> str:
    """One feed line (identifiers never hold tabs or newlines: nothing to escape)."""
    return f"{location}\t{sku}\t{available}\t{AVAILABILITY[status]}\n"


def _rows(positions: list[Position]) -> str:
    return "".join(row(p.location, p.sku, p.available, p.status) for p in positions)


async def chunks(store: StockStore, locations: Iterable[Location]) -> AsyncIterator[str]:
    """The feed's rows (no header), location by location, a chunk of rows at a time."""
    for location in locations:
        async for found in positions_of(store, location):
            yield _rows(found)
