"""Reservations: hold stock, then commit (a sale), release, or extend; expiry is automatic."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, Router, get, post
from litestar.params import JSONBody, PathParameter

from omnistock.api.auth import principal, services
from omnistock.api.body import StrictBody
from omnistock.api.idempotency import idempotency
from omnistock.api.openapi import REPLAYED, responses
from omnistock.api.responses import replayable
from omnistock.api.schemas import CommitIn, ExtendIn, IdempotencyKey, ReservationCreate
from omnistock.domain.errors import NotActive, NotFound
from omnistock.domain.ids import new_reservation_id
from omnistock.domain.reservations import (
    Reservation,
    StoredReservation,
    decode_reservation,
    present,
    sum_lines,
)
from omnistock.domain.roles import Principal, may_see_reservation, require_reserve
from omnistock.postgres.sql import load_queries
from omnistock.services import Services

LEDGER = load_queries("ledger.sql")
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
    idempotency_key: IdempotencyKey = None,  # documented and checked here; read by idempotency()
) -> Response[Reservation]:
    svc, who = services(request), principal(request)
    require_reserve(who, data.location)
    await svc.locations.require(data.location)
    idem = idempotency(request, who, data)
    doc, replayed = await svc.store.reserve(
        reservation_id=new_reservation_id(svc.store.partition(data.location)),
        location=data.location,
        lines=sum_lines((line.sku, line.qty) for line in data.lines),
        ttl_seconds=data.ttl_seconds or svc.settings.default_ttl_seconds,
        channel=data.channel,
        ref=data.ref,
        allow_partial=data.allow_partial,
        actor=who.name,
        idem=idem,
        owner=who.id,
        owner_role=who.role.value,
    )
    svc.metrics.reservations.inc(outcome="held")
    return replayable(present(doc), 201, replayed)


def _not_found(reservation_id: str) -> NotFound:
    return NotFound(f"reservation {reservation_id!r} not found")


def _visible(who: Principal, doc: StoredReservation) -> StoredReservation:
    """``doc``, or the same 404 as for an id that does not exist when it is not ``who``'s to see
    (a storefront key's reservation: API.md "Roles (additions)")."""
    if not may_see_reservation(who, doc.location, doc.owner, doc.owner_role):
        raise _not_found(doc.id)
    return doc


async def _from_postgres(svc: Services, who: Principal, reservation_id: str) -> StoredReservation:
    """A reservation Redis no longer keeps (finished past retention, or not restored by a
    rebuild) comes from Postgres, the record."""
    raw = await svc.db.fetchval(LEDGER["reservation_doc"], reservation_id)
    if raw is None:
        raise _not_found(reservation_id)
    return _visible(who, decode_reservation(raw))


async def _find(svc: Services, who: Principal, reservation_id: str) -> StoredReservation:
    doc = await svc.store.get_reservation(reservation_id)
    if doc is None:
        return await _from_postgres(svc, who, reservation_id)
    return _visible(who, doc)


async def _find_live(svc: Services, who: Principal, reservation_id: str) -> StoredReservation:
    """For commit, release and extend: the reservation in Redis, where its scripts act (and
    replay); one only Postgres still has is no longer active. Ownership is checked before
    anything else is said about it; it never changes, so the script need not check it again."""
    doc = await svc.store.get_reservation(reservation_id)
    if doc is not None:
        doc = _visible(who, doc)
        require_reserve(who, doc.location)
        return doc
    doc = await _from_postgres(svc, who, reservation_id)
    require_reserve(who, doc.location)
    raise NotActive(
        f"reservation {reservation_id} is {doc.status}, no longer active",
        reservation_status=doc.status,
    )


@get("/{reservation_id:str}", summary="Read a reservation", responses=responses(403, 404, 422))
async def get_reservation(
    request: Request[Any, Any, Any], reservation_id: ReservationId
) -> Reservation:
    return present(await _find(services(request), principal(request), reservation_id))


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
    data: JSONBody[CommitIn | None] = None,
    idempotency_key: IdempotencyKey = None,  # documented and checked here; read by idempotency()
) -> Response[Reservation]:
    svc, who = services(request), principal(request)
    doc = await _find_live(svc, who, reservation_id)
    lines = None
    if data and data.lines:
        lines = sum_lines((line.sku, line.qty) for line in data.lines)
    doc, replayed = await svc.store.commit(
        doc, lines, who.name, idempotency(request, who, data or CommitIn())
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
    idempotency_key: IdempotencyKey = None,  # documented and checked here; read by idempotency()
) -> Response[Reservation]:
    svc, who = services(request), principal(request)
    doc = await _find_live(svc, who, reservation_id)
    doc, replayed = await svc.store.release(doc, who.name, idempotency(request, who, None))
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
    idempotency_key: IdempotencyKey = None,  # documented and checked here; read by idempotency()
) -> Response[Reservation]:
    svc, who = services(request), principal(request)
    doc = await _find_live(svc, who, reservation_id)
    doc, replayed = await svc.store.extend(
        doc, data.ttl_seconds, who.name, idempotency(request, who, data)
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
