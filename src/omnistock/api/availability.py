"""Availability: where a sku can be promised (one sku across locations, or a sku x location matrix)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Router, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, QueryParameter

from omnistock.api.body import StrictBody
from omnistock.api.limits import AVAILABILITY_BODY_BYTES
from omnistock.api.openapi import responses
from omnistock.api.schemas import (
    NEAR_PATTERN,
    AvailabilityQuery,
    IdentifierListQuery,
    IdentifierQuery,
    SkuPath,
)
from omnistock.domain.clock import rfc3339
from omnistock.domain.errors import ValidationFailed
from omnistock.domain.ids import check_identifier
from omnistock.domain.locations import Location, nearest
from omnistock.domain.reservations import Channel
from omnistock.domain.stock import Status
from omnistock.domain.supply import DATE_TIME_PATTERN, Due, parse_eta
from omnistock.usecases.availability import Availability

MAX_CELLS = 10_000


class LocationAvailability(msgspec.Struct, kw_only=True, omit_defaults=True):
    location: str
    available: int
    status: Status
    on_hand: int
    reserved: int
    pickup: bool
    distance_km: float | None = None
    # With ?by=: units due from open supply (and transfers) with an ETA at or before `by`, and
    # available + those.
    incoming_by: int | None = None
    available_by: int | None = None
    # With ?by= and incoming_by > 0: the earliest ETA of those units (it may be past: late
    # supply) and the units due at it. The board's "due" column reads these.
    next_eta: str | None = None
    next_incoming: int | None = None


class SkuAvailability(msgspec.Struct, kw_only=True):
    sku: str
    total_available: int
    locations: list[LocationAvailability]


class Cell(msgspec.Struct, kw_only=True, omit_defaults=True):
    sku: str
    location: str
    available: int
    status: Status
    # With "by": as LocationAvailability's.
    incoming_by: int | None = None
    available_by: int | None = None
    next_eta: str | None = None
    next_incoming: int | None = None


class Matrix(msgspec.Struct, kw_only=True):
    items: list[Cell]


def parse_near(near: str | None, radius_km: float | None) -> tuple[float, float] | None:
    """``lat,lon`` -> floats, or None without ``near``; 422 naming the parameter when bad."""
    if near is None:
        if radius_km is not None:
            raise ValidationFailed("radius_km", "only meaningful with near=lat,lon")
        return None
    parts = near.split(",")
    try:
        lat, lon = (float(p) for p in parts)
    except ValueError:
        raise ValidationFailed("near", "must be 'lat,lon' in decimal degrees") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise ValidationFailed("near", "latitude must be within ±90 and longitude within ±180")
    return lat, lon


Radius = Annotated[
    float | None,
    QueryParameter(
        gt=0,
        le=20_000,
        description="km; only with near (without it: 422)",
        schema_extra={"exclusiveMinimum": 0},
    ),
]
ChannelQuery = Annotated[
    Channel | None,
    QueryParameter(description="the channel's availability: less the location's fence for it"),
]
By = Annotated[
    str | None,
    QueryParameter(
        pattern=DATE_TIME_PATTERN,
        description="RFC 3339 date-time (years 2000-2099): each location also has incoming_by "
        "and available_by, and while incoming_by > 0 next_eta (the earliest ETA of those "
        "units) and next_incoming (the units due at it)",
    ),
]
Near = Annotated[
    str | None,
    QueryParameter(pattern=NEAR_PATTERN, description="lat,lon: nearest locations first"),
]


@get(
    "/availability/{sku:str}",
    summary="Availability of one sku across locations",
    responses=responses(404, 422),
)
async def sku_availability(
    availability: NamedDependency[Availability],
    sku: SkuPath,
    location: IdentifierListQuery = None,
    group: IdentifierQuery = None,
    near: Near = None,
    radius_km: Radius = None,
    channel: ChannelQuery = None,
    by: By = None,
) -> SkuAvailability:
    point = parse_near(near, radius_km)
    by_ms = parse_eta("by", by) if by is not None else None
    filtered = location is not None or group is not None or point is not None
    candidates: list[Location]
    if location is not None:
        for i, loc_id in enumerate(location):
            check_identifier(f"location[{i}]", loc_id)
        candidates = [await availability.require(loc_id) for loc_id in dict.fromkeys(location)]
    else:
        candidates = availability.all_locations()
    if group is not None:
        candidates = [loc for loc in candidates if group in loc.groups]
    distances: dict[str, float] = {}
    if point is not None:
        ranked = nearest(candidates, point[0], point[1], radius_km)
        candidates = [loc for loc, _ in ranked]
        distances = {loc.id: d for loc, d in ranked}
    cells = [(loc, sku) for loc in candidates]
    due: list[Due | None] = [None] * len(candidates)
    if by_ms is None:
        positions = await availability.positions(cells, channel)
    else:
        positions, found = await availability.positions_due(cells, channel, by_ms)
        due = [*found]
    rows = [
        LocationAvailability(
            location=loc.id,
            available=pos.available,
            status=pos.status,
            on_hand=pos.on_hand,
            reserved=pos.reserved,
            pickup=loc.pickup,
            distance_km=round(distances[loc.id], 3) if loc.id in distances else None,
            incoming_by=None if d is None else d.units,
            available_by=None if d is None else pos.available + d.units,
            next_eta=None if d is None or d.next_eta is None else rfc3339(d.next_eta),
            next_incoming=None if d is None or d.next_eta is None else d.next_units,
        )
        for loc, pos, d in zip(candidates, positions, due, strict=True)
        if filtered or pos.version > 0
    ]
    return SkuAvailability(sku=sku, total_available=sum(r.available for r in rows), locations=rows)


@post(
    "/availability",
    summary="Availability matrix: skus x locations (at most 10,000 cells: else 422)",
    status_code=200,
    request_max_body_size=AVAILABILITY_BODY_BYTES,
    responses=responses(404, 413, 422),
)
async def availability_matrix(
    data: JSONBody[AvailabilityQuery], availability: NamedDependency[Availability]
) -> Matrix:
    if len(data.skus) * len(data.locations) > MAX_CELLS:
        raise ValidationFailed(
            "skus",
            f"{len(data.skus)} skus x {len(data.locations)} locations exceeds {MAX_CELLS} cells",
        )
    by_ms = parse_eta("by", data.by) if data.by is not None else None
    locations = [await availability.require(loc_id) for loc_id in data.locations]
    cells = [(loc, sku) for sku in data.skus for loc in locations]
    if by_ms is None:
        positions = await availability.positions(cells, data.channel)
        return Matrix(
            items=[
                Cell(sku=p.sku, location=p.location, available=p.available, status=p.status)
                for p in positions
            ]
        )
    positions, due = await availability.positions_due(cells, data.channel, by_ms)
    return Matrix(
        items=[
            Cell(
                sku=p.sku,
                location=p.location,
                available=p.available,
                status=p.status,
                incoming_by=d.units,
                available_by=p.available + d.units,
                next_eta=None if d.next_eta is None else rfc3339(d.next_eta),
                next_incoming=None if d.next_eta is None else d.next_units,
            )
            for p, d in zip(positions, due, strict=True)
        ]
    )


availability_router = Router(
    "/v1",
    route_handlers=[sku_availability, availability_matrix],
    tags=["availability"],
    dto=StrictBody,
)
