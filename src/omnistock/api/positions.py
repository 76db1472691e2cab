"""``GET /v1/stock/{location_id}``: the positions of a location, a page at a time."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Router, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from omnistock.api.openapi import responses
from omnistock.api.schemas import LocationPath, digits_at_most
from omnistock.domain.errors import ValidationFailed
from omnistock.domain.ids import IDENTIFIER_PATTERN
from omnistock.domain.stock import Position
from omnistock.usecases.positions import Positions

_MAX_SCAN_CURSOR = 2**64 - 1  # SSCAN cursors are unsigned 64-bit
PAGE_PATTERN = digits_at_most(_MAX_SCAN_CURSOR)


class PositionPage(msgspec.Struct):
    items: list[Position]
    next: str | None


def _case_insensitive_glob(text: str) -> str:
    """``Ab-1`` -> ``*[aA][bB]-1*`` (identifiers hold no glob metacharacters)."""
    return "*" + "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in text) + "*"


@get(
    "/{location_id:str}",
    summary="List the positions of a location (paged, sku search)",
    responses=responses(404, 422),
)
async def list_positions(
    positions: NamedDependency[Positions],
    location_id: LocationPath,
    q: Annotated[
        str | None,
        QueryParameter(pattern=IDENTIFIER_PATTERN, description="case-insensitive sku substring"),
    ] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=1000, description="about this many")] = 200,
    page: Annotated[
        str | None,
        QueryParameter(pattern=PAGE_PATTERN, description="`next` of a page (at most 2^64 - 1)"),
    ] = None,
) -> PositionPage:
    """Positions sorted by sku within a page; pages are in no particular order. Follow ``next``
    until it is null."""
    cursor = int(page or 0)
    if cursor > _MAX_SCAN_CURSOR:  # Redis refuses it ("invalid cursor"): it is none of ours
        raise ValidationFailed("page", "not a page token of this server (use a page's `next`)")
    match = _case_insensitive_glob(q) if q else None
    items, cursor = await positions.page(location_id, cursor, limit, match)
    return PositionPage(items=items, next=str(cursor) if cursor else None)


positions_router = Router("/v1/stock", route_handlers=[list_positions], tags=["stock"])
