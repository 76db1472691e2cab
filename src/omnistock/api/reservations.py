"""Reservations: hold stock, then commit (a sale), release, or extend; expiry is automatic."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, Router, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, PathParameter

from omnistock.api.auth import principal
from omnistock.api.body import StrictBody
from omnistock.api.idempotency import idempotency
from omnistock.api.openapi import REPLAYED, responses
from omnistock.api.responses import replayable
from omnistock.api.schemas import CommitIn, ExtendIn, IdempotencyKey, ReservationCreate
from omnistock.domain.reservations import Reservation, present, sum_lines
from omnistock.usecases.reservations import Reservations

ReservationId = Annotated[
    str, PathParameter(min_length=1, max_length=64, description="reservation id")
]


@post(
    "/",
    summary="Create a reservation (all lines or none, unless allow_partial)",
    status_code=201,
    responses=responses(403, 404, 409, 413, 422),
    response_headers=REPLAYED,
)
async def create_reservation(
    request: Request[Any, Any, Any],
    data: JSONBody[ReservationCreate],
    reservations: NamedDependency[Reservations],
    idempotency_key: IdempotencyKey = None,  # documented and checked here; read by idempotency()
) -> Response[Reservation]:
    who = principal(request)
    doc, replayed = await reservations.create(
        who,
        data.location,
        sum_lines((line.sku, line.qty) for line in data.lines),
        data.ttl_seconds,
        data.channel,
        data.ref,
        data.allow_partial,
        lambda: idempotency(request, who, data),
    )
    return replayable(present(doc), 201, replayed)


@get("/{reservation_id:str}", summary="Read a reservation", responses=responses(403, 404, 422))
async def get_reservation(
    request: Request[Any, Any, Any],
    reservation_id: ReservationId,
    reservations: NamedDependency[Reservations],
) -> Reservation:
    return present(await reservations.get(principal(request), reservation_id))


@post(
    "/{reservation_id:str}/commit",
    summary="Commit: held units leave on_hand",
    status_code=200,
    responses=responses(403, 404, 409, 413, 422),
    response_headers=REPLAYED,
)
async def commit_reservation(
    request: Request[Any, Any, Any],
    reservation_id: ReservationId,
    reservations: NamedDependency[Reservations],
    data: JSONBody[CommitIn | None] = None,
    idempotency_key: IdempotencyKey = None,  # documented and checked here; read by idempotency()
) -> Response[Reservation]:
    who = principal(request)
    lines = None
    if data and data.lines:
        lines = sum_lines((line.sku, line.qty) for line in data.lines)
    doc, replayed = await reservations.commit(
        who, reservation_id, lines, lambda: idempotency(request, who, data or CommitIn())
    )
    return replayable(present(doc), 200, replayed)


@post(
    "/{reservation_id:str}/release",
    summary="Release everything held",
    status_code=200,
    responses=responses(403, 404, 409, 413, 422),
    response_headers=REPLAYED,
)
async def release_reservation(
    request: Request[Any, Any, Any],
    reservation_id: ReservationId,
    reservations: NamedDependency[Reservations],
    idempotency_key: IdempotencyKey = None,  # documented and checked here; read by idempotency()
) -> Response[Reservation]:
    who = principal(request)
    doc, replayed = await reservations.release(
        who, reservation_id, lambda: idempotency(request, who, None)
    )
    return replayable(present(doc), 200, replayed)


@post(
    "/{reservation_id:str}/extend",
    summary="Move expires_at to now + ttl_seconds (at most created_at + 7 days: else 422)",
    status_code=200,
    responses=responses(403, 404, 409, 413, 422),
    response_headers=REPLAYED,
)
async def extend_reservation(
    request: Request[Any, Any, Any],
    reservation_id: ReservationId,
    data: JSONBody[ExtendIn],
    reservations: NamedDependency[Reservations],
    idempotency_key: IdempotencyKey = None,  # documented and checked here; read by idempotency()
) -> Response[Reservation]:
    who = principal(request)
    doc, replayed = await reservations.extend(
        who, reservation_id, data.ttl_seconds, lambda: idempotency(request, who, data)
    )
    return replayable(present(doc), 200, replayed)


reservations_router = Router(
    "/v1/reservations",
    route_handlers=[
        create_reservation,
        get_reservation,
        commit_reservation,
        release_reservation,
        extend_reservation,
    ],
    tags=["reservations"],
    dto=StrictBody,
)
