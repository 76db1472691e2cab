"""Locations: stores, warehouses and the like (admin writes; every role reads)."""

from __future__ import annotations

import zoneinfo
from typing import Any

import msgspec
from litestar import Request, Response, Router, get, put
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody
from msgspec import UNSET, UnsetType

from omnistock.api.auth import principal
from omnistock.api.availability import Near, Radius, parse_near
from omnistock.api.body import StrictBody
from omnistock.api.openapi import responses
from omnistock.api.schemas import IdentifierQuery, LocationPath, LocationPutBody
from omnistock.domain.errors import ValidationFailed
from omnistock.domain.locations import Location, default_pickup, default_ship_from, nearest
from omnistock.domain.roles import require_admin
from omnistock.usecases.locations import Locations


class ListedLocation(Location, kw_only=True):
    """A location in a list; with ``near``, its distance from that point."""

    distance_km: float | UnsetType = UNSET


class LocationList(msgspec.Struct):
    items: list[ListedLocation]


def _check_timezone(name: str | None) -> None:
    if name is None:
        return
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationFailed("timezone", f"unknown IANA time zone {name!r}") from None


@put(
    "/{location_id:str}",
    summary="Create or replace a location (admin)",
    responses={
        **responses(403, 413, 422),
        201: ResponseSpec(Location, description="Created (200: replaced)"),
    },
)
async def put_location(
    request: Request[Any, Any, Any],
    location_id: LocationPath,
    data: JSONBody[LocationPutBody],
    locations: NamedDependency[Locations],
) -> Response[Location]:
    require_admin(principal(request))
    if (data.lat is None) != (data.lon is None):
        raise ValidationFailed("lat" if data.lat is None else "lon", "lat and lon go together")
    _check_timezone(data.timezone)
    wanted = Location(
        id=location_id,
        name=data.name,
        kind=data.kind,
        lat=data.lat,
        lon=data.lon,
        pickup=default_pickup(data.kind) if data.pickup is None else data.pickup,
        ship_from=default_ship_from(data.kind) if data.ship_from is None else data.ship_from,
        groups=list(dict.fromkeys(data.groups)),
        safety_stock=data.safety_stock,
        limited_threshold=data.limited_threshold,
        timezone=data.timezone,
        priority=data.priority,
        channel_safety_stock=data.channel_safety_stock.as_dict(),
    )
    stored, created = await locations.put(wanted)
    return Response(stored, status_code=201 if created else 200)


@get("/{location_id:str}", summary="Read a location", responses=responses(404, 422))
async def get_location(
    location_id: LocationPath, locations: NamedDependency[Locations]
) -> Location:
    return await locations.require(location_id)


@get("/", summary="List locations, by group and/or nearest first", responses=responses(422))
async def list_locations(
    locations: NamedDependency[Locations],
    group: IdentifierQuery = None,
    near: Near = None,
    radius_km: Radius = None,
) -> LocationList:
    point = parse_near(near, radius_km)
    found = locations.listed(group)
    if point is None:
        return LocationList(items=[ListedLocation(**msgspec.structs.asdict(loc)) for loc in found])
    return LocationList(
        items=[
            ListedLocation(**msgspec.structs.asdict(loc), distance_km=round(d, 3))
            for loc, d in nearest(found, point[0], point[1], radius_km)
        ]
    )


locations_router = Router(
    "/v1/locations",
    route_handlers=[put_location, get_location, list_locations],
    tags=["locations"],
    dto=StrictBody,
)
