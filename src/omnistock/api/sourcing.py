"""Sourcing: where to fulfil an order from (a plan: nothing is held), and holding it there (a
sourcing hold: one reservation per location, all or nothing)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, Response, Router, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, PathParameter
from msgspec import Meta

from omnistock.api.auth import principal
from omnistock.api.body import StrictBody
from omnistock.api.idempotency import idempotency
from omnistock.api.limits import SOURCING_BODY_BYTES
from omnistock.api.openapi import REPLAYED, responses
from omnistock.api.responses import replayable
from omnistock.api.schemas import IdempotencyKey, Identifier, Lines, Ref, Ttl
from omnistock.domain.clock import rfc3339
from omnistock.domain.errors import ValidationFailed
from omnistock.domain.reservations import Channel, Reservation, ShortageLine, present
from omnistock.domain.sourcing import (
    DEFAULT_LIMIT,
    DEFAULT_MAX_LOCATIONS,
    MAX_LIMIT,
    MAX_MAX_LOCATIONS,
    Fulfillment,
    Plan,
)
from omnistock.domain.sourcing_holds import HoldStatus
from omnistock.usecases.sourcing import Sourcing
from omnistock.usecases.sourcing_holds import HeldView, HoldAsk, SourcingHolds


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


class SourcingHoldIn(SourcingPlanIn, kw_only=True):
    """The plan body, plus what the reservations are held with."""

    ttl_seconds: Ttl | None = None
    ref: Ref | None = None
    allow_partial: Annotated[bool, Meta(description="ship only (with pickup: 422)")] = False


SourcingHoldBody = Annotated[
    SourcingHoldIn,
    Meta(
        extra_json_schema={
            "anyOf": [
                {"properties": {"radius_km": {"type": "null"}}},
                {"required": ["near"], "properties": {"near": {"type": "object"}}},
            ],
            "not": {
                "required": ["allow_partial", "fulfillment"],
                "properties": {
                    "allow_partial": {"const": True},
                    "fulfillment": {"const": "pickup"},
                },
            },
        }
    ),
]

SourcingId = Annotated[
    str, PathParameter(min_length=1, max_length=64, description="sourcing reservation id")
]


class SourcingHoldOut(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A sourcing hold: its parts, each a normal reservation carrying ``sourcing`` = ``id``;
    ``shortages`` when it failed."""

    id: str
    status: HoldStatus
    reservations: list[Reservation]
    why: str
    created_at: str
    attempt: int
    shortages: list[ShortageLine] | None = None


def _out(view: HeldView) -> SourcingHoldOut:
    record = view.record
    return SourcingHoldOut(
        id=record.id,
        status=record.status,
        reservations=[present(doc) for doc in view.parts],
        why=record.why,
        created_at=rfc3339(record.created_at),
        attempt=record.attempt,
        shortages=None
        if record.shortages is None
        else [ShortageLine(sku=s, requested=r, available=a) for s, r, a in record.shortages],
    )


@post(
    "/reservations",
    summary="Hold the best sourcing option: one reservation per location, all or nothing",
    status_code=201,
    request_max_body_size=SOURCING_BODY_BYTES,
    responses=responses(403, 404, 409, 413, 422),
    response_headers=REPLAYED,
)
async def create_sourcing_hold(
    request: Request[Any, Any, Any],
    data: JSONBody[SourcingHoldBody],
    sourcing_holds: NamedDependency[SourcingHolds],
    idempotency_key: IdempotencyKey = None,  # documented and checked here; read by idempotency()
) -> Response[SourcingHoldOut]:
    if data.radius_km is not None and data.near is None:
        raise ValidationFailed("radius_km", "only meaningful with near")
    who = principal(request)
    ask = HoldAsk(
        lines=[(line.sku, line.qty) for line in data.lines],
        fulfillment=data.fulfillment,
        near=None if data.near is None else (data.near.lat, data.near.lon),
        radius_km=data.radius_km,
        group=data.group,
        ids=data.locations,
        channel=data.channel,
        max_locations=data.max_locations,
        ttl_seconds=data.ttl_seconds,
        ref=data.ref,
        allow_partial=data.allow_partial,
    )
    view, replayed = await sourcing_holds.create(who, ask, lambda: idempotency(request, who, data))
    return replayable(_out(view), 201, replayed)


@get(
    "/reservations/{hold_id:str}",
    summary="Read a sourcing hold and its parts' reservations",
    responses=responses(403, 404, 422),
)
async def get_sourcing_hold(
    request: Request[Any, Any, Any],
    hold_id: SourcingId,
    sourcing_holds: NamedDependency[SourcingHolds],
) -> SourcingHoldOut:
    return _out(await sourcing_holds.get(principal(request), hold_id))


@post(
    "/reservations/{hold_id:str}/release",
    summary="Release every active part of a sourcing hold",
    status_code=200,
    responses=responses(403, 404, 409, 413, 422),
    response_headers=REPLAYED,
)
async def release_sourcing_hold(
    request: Request[Any, Any, Any],
    hold_id: SourcingId,
    sourcing_holds: NamedDependency[SourcingHolds],
    idempotency_key: IdempotencyKey = None,  # documented and checked here; read by idempotency()
) -> Response[SourcingHoldOut]:
    who = principal(request)
    view, replayed = await sourcing_holds.release(
        who, hold_id, lambda: idempotency(request, who, None)
    )
    return replayable(_out(view), 200, replayed)


sourcing_router = Router(
    "/v1/sourcing",
    route_handlers=[
        sourcing_plan,
        create_sourcing_hold,
        get_sourcing_hold,
        release_sourcing_hold,
    ],
    tags=["sourcing"],
    dto=StrictBody,
)
