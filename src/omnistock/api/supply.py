"""Supply: stock expected at a location by an ETA (create, receive, reschedule, cancel, read,
list). Roles: writes as stock writes (admin and integration anywhere, store keys at their
locations); reads for every key."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, Response, Router, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, PathParameter, QueryParameter

from omnistock.api.auth import principal
from omnistock.api.body import StrictBody
from omnistock.api.idempotency import idempotency
from omnistock.api.limits import ADJUSTMENTS_BODY_BYTES
from omnistock.api.openapi import REPLAYED, responses
from omnistock.api.responses import replayable
from omnistock.api.schemas import IdempotencyKey, Identifier, IdentifierQuery, Ref
from omnistock.domain.ids import SUPPLY_ID_PATTERN
from omnistock.domain.supply import (
    DATE_TIME_PATTERN,
    MAX_LINE_QTY,
    MAX_LINES,
    SupplyKind,
    SupplyStatus,
    SupplyView,
    parse_eta,
    sum_supply_lines,
    view,
)
from omnistock.usecases.supply import Supply

DateTime = Annotated[
    str,
    msgspec.Meta(
        pattern=DATE_TIME_PATTERN,
        description="RFC 3339 date-time (years 2000-2099), e.g. 2026-12-01T09:00:00Z",
    ),
]
SupplyId = Annotated[
    str, PathParameter(pattern=SUPPLY_ID_PATTERN, description="supply id (y<n>-<20 chars>)")
]


class SupplyLineIn(msgspec.Struct, kw_only=True):
    sku: Identifier
    qty: Annotated[int, msgspec.Meta(ge=1, le=MAX_LINE_QTY)]


SupplyLines = Annotated[list[SupplyLineIn], msgspec.Meta(min_length=1, max_length=MAX_LINES)]


class SupplyCreate(msgspec.Struct, kw_only=True):
    location: Identifier
    eta: DateTime
    lines: SupplyLines
    ref: Ref | None = None
    kind: SupplyKind = "purchase_order"


class SupplyReceive(msgspec.Struct, kw_only=True):
    # None: everything outstanding. over_receipt false: a line beyond what is outstanding is a
    # 409 and nothing is received (the default, true, puts it on hand: API.md).
    lines: SupplyLines | None = None
    over_receipt: bool = True


class SupplyReschedule(msgspec.Struct, kw_only=True):
    eta: DateTime


class SupplyPage(msgspec.Struct, kw_only=True):
    items: list[SupplyView]
    next: str | None


@post(
    "/",
    summary="Record incoming supply (a purchase order, a production run) with an ETA",
    description="Each line adds its qty to the position's `incoming` (lines naming the same "
    "sku are summed).",
    status_code=201,
    request_max_body_size=ADJUSTMENTS_BODY_BYTES,
    responses=responses(403, 404, 413, 422),
    response_headers=REPLAYED,
)
async def create_supply(
    request: Request[Any, Any, Any],
    data: JSONBody[SupplyCreate],
    supply: NamedDependency[Supply],
    idempotency_key: IdempotencyKey = None,  # documented and checked here; read by idempotency()
) -> Response[SupplyView]:
    who = principal(request)
    eta = parse_eta("eta", data.eta)
    lines = sum_supply_lines((line.sku, line.qty) for line in data.lines)
    doc, replayed = await supply.create(
        who, data.location, eta, lines, data.kind, data.ref, lambda: idempotency(request, who, data)
    )
    return replayable(view(doc), 201, replayed)


@get("/{supply_id:str}", summary="Read a supply", responses=responses(404, 422))
async def get_supply(supply_id: SupplyId, supply: NamedDependency[Supply]) -> SupplyView:
    return view(await supply.get(supply_id))


@get("/", summary="List supply, newest first (paged)", responses=responses(422))
async def list_supply(
    supply: NamedDependency[Supply],
    location: IdentifierQuery = None,
    sku: IdentifierQuery = None,
    status: Annotated[SupplyStatus | None, QueryParameter()] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    before: Annotated[
        str | None,
        QueryParameter(
            pattern=SUPPLY_ID_PATTERN,
            description="`next` of the previous page: items older than that supply (else 422)",
        ),
    ] = None,
) -> SupplyPage:
    docs, more = await supply.page(location, sku, status, before, limit)
    items = [view(doc) for doc in docs]
    return SupplyPage(items=items, next=items[-1].id if more else None)


@post(
    "/{supply_id:str}/receive",
    summary="Receive supply (partly, fully, or beyond what was expected)",
    description="on_hand += received; incoming -= the outstanding part of it. A finished "
    "supply: 409 with `supply_status`.",
    status_code=200,
    request_max_body_size=ADJUSTMENTS_BODY_BYTES,
    responses=responses(403, 404, 409, 413, 422),
    response_headers=REPLAYED,
)
async def receive_supply(
    request: Request[Any, Any, Any],
    supply_id: SupplyId,
    supply: NamedDependency[Supply],
    data: JSONBody[SupplyReceive | None] = None,
    idempotency_key: IdempotencyKey = None,  # documented and checked here; read by idempotency()
) -> Response[SupplyView]:
    who = principal(request)
    body = data or SupplyReceive()
    lines = None
    if body.lines is not None:
        lines = sum_supply_lines((line.sku, line.qty) for line in body.lines)
    doc, replayed = await supply.receive(
        who, supply_id, lines, body.over_receipt, lambda: idempotency(request, who, body)
    )
    return replayable(view(doc), 200, replayed)


@post(
    "/{supply_id:str}/reschedule",
    summary="Move a supply's ETA",
    status_code=200,
    responses=responses(403, 404, 409, 413, 422),
    response_headers=REPLAYED,
)
async def reschedule_supply(
    request: Request[Any, Any, Any],
    supply_id: SupplyId,
    data: JSONBody[SupplyReschedule],
    supply: NamedDependency[Supply],
    idempotency_key: IdempotencyKey = None,  # documented and checked here; read by idempotency()
) -> Response[SupplyView]:
    who = principal(request)
    eta = parse_eta("eta", data.eta)
    doc, replayed = await supply.reschedule(
        who, supply_id, eta, lambda: idempotency(request, who, data)
    )
    return replayable(view(doc), 200, replayed)


@post(
    "/{supply_id:str}/cancel",
    summary="Cancel a supply: what is outstanding leaves incoming",
    status_code=200,
    responses=responses(403, 404, 409, 413, 422),
    response_headers=REPLAYED,
)
async def cancel_supply(
    request: Request[Any, Any, Any],
    supply_id: SupplyId,
    supply: NamedDependency[Supply],
    idempotency_key: IdempotencyKey = None,  # documented and checked here; read by idempotency()
) -> Response[SupplyView]:
    who = principal(request)
    doc, replayed = await supply.cancel(who, supply_id, lambda: idempotency(request, who, None))
    return replayable(view(doc), 200, replayed)


supply_router = Router(
    "/v1/supply",
    route_handlers=[
        create_supply,
        get_supply,
        list_supply,
        receive_supply,
        reschedule_supply,
        cancel_supply,
    ],
    tags=["supply"],
    dto=StrictBody,
)
