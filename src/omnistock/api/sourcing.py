"""Sourcing: where to fulfil an order from (a dry run: nothing is held)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, Router, post
from litestar.di import NamedDependency
from litestar.params import JSONBody
from msgspec import Meta

from omnistock.api.auth import principal
from omnistock.api.body import StrictBody
from omnistock.api.limits import SOURCING_BODY_BYTES
from omnistock.api.openapi import responses
from omnistock.api.schemas import Identifier, Lines
from omnistock.domain.errors import ValidationFailed
from omnistock.domain.reservations import Channel
from omnistock.domain.sourcing import (
    DEFAULT_LIMIT,
    DEFAULT_MAX_LOCATIONS,
    MAX_LIMIT,
    MAX_MAX_LOCATIONS,
    Fulfillment,
    Plan,
)
from omnistock.usecases.sourcing import Sourcing


class NearIn(msgspec.Struct, kw_only=True):
    lat: Annotated[float, Meta(ge=-90, le=90)]
    lon: Annotated[float, Meta(ge=-180, le=180)]


class SourcingPlanIn(msgspec.Struct, kw_only=True):
    lines: Lines
    fulfillment: Fulfillment
    near: NearIn | None = None
    radius_km: Annotated[float, Meta(gt=0, le=20_000, description="km; only with near")] | None = (
        None
    )
    group: Identifier | None = None
    locations: Annotated[list[Identifier], Meta(max_length=1000)] | None = None
    channel: Channel | None = None
    max_locations: Annotated[int, Meta(ge=1, le=MAX_MAX_LOCATIONS)] = DEFAULT_MAX_LOCATIONS
    limit: Annotated[int, Meta(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT


# radius_km needs near (checked by the handler, stated here): without near it is null or absent.
SourcingPlanBody = Annotated[
    SourcingPlanIn,
    Meta(
        extra_json_schema={
            "anyOf": [
                {"properties": {"radius_km": {"type": "null"}}},
                {"required": ["near"], "properties": {"near": {"type": "object"}}},
            ]
        }
    ),
]


@post(
    "/plans",
    summary="Plan where to fulfil an order from (a dry run: nothing is held)",
    status_code=200,
    request_max_body_size=SOURCING_BODY_BYTES,
    responses=responses(403, 413, 422),
)
async def sourcing_plan(
    request: Request[Any, Any, Any],
    data: JSONBody[SourcingPlanBody],
    sourcing: NamedDependency[Sourcing],
) -> Plan:
    if data.radius_km is not None and data.near is None:
        raise ValidationFailed("radius_km", "only meaningful with near")
    return await sourcing.plan(
        principal(request),
        [(line.sku, line.qty) for line in data.lines],
        data.fulfillment,
        near=None if data.near is None else (data.near.lat, data.near.lon),
        radius_km=data.radius_km,
        group=data.group,
        ids=data.locations,
        channel=data.channel,
        max_locations=data.max_locations,
        limit=data.limit,
    )


sourcing_router = Router(
    "/v1/sourcing", route_handlers=[sourcing_plan], tags=["sourcing"], dto=StrictBody
)
