"""Google's local product inventory feed: one tab-separated row per position.

Columns ``store_code`` (the location id), ``id`` (the sku), ``quantity`` (what can be promised:
``available``) and ``availability``, Google's name for the position's status.
"""

from __future__ import annotations

from collections.abc import Iterable

from omnistock.domain.stock import Position, Status

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


def rows(positions: Iterable[Position]) -> str:
    """The feed lines of ``positions``."""
    return "".join(row(p.location, p.sku, p.available, p.status) for p in positions)
