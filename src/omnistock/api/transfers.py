"""Transfers: stock on its way between locations (create, receive, cancel, read, list). Roles:
admin and integration anywhere; a store key creates and cancels transfers from its locations and
receives them at its locations; reads for every key."""

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
from omnistock.api.supply import DateTime, SupplyLines
from omnistock.domain.ids import TRANSFER_ID_PATTERN
from omnistock.domain.supply import parse_eta, sum_supply_lines
from omnistock.domain.transfers import TransferStatus, TransferView
from omnistock.usecases.transfers import Transfers

TransferId = Annotated[
    str, PathParameter(pattern=TRANSFER_ID_PATTERN, description="transfer id (t<n>-<20 chars>)")
]


class TransferCreate(msgspec.Struct, kw_only=True):
    from_: Identifier = msgspec.field(name="from")
    to: Identifier
    lines: SupplyLines
    ref: Ref | None = None
    eta: DateTime | None = None


class TransferReceive(msgspec.Struct, kw_only=True):
    # None: everything outstanding. over_receipt false: a line beyond what is outstanding is a
    # 409 and nothing is received (the default, true, puts it on hand, as supply does).
    lines: SupplyLines | None = None
    over_receipt: bool = True


class TransferPage(msgspec.Struct, kw_only=True):
    items: list[TransferView]
    next: str | None


@post(
    "/",
    summary="Send stock from one location to another",
    description="The units leave `from` (all lines or none, against its available: else 409 "
    "with `shortages`) and are `incoming` at `to` (lines naming the same sku are summed). "
    "Without `eta` they count in `incoming` but never in `incoming_by`. `to` must be another "
    "location than `from` (else 422).",
    status_code=201,
    request_max_body_size=ADJUSTMENTS_BODY_BYTES,
    responses=responses(403, 404, 409, 413, 422),
    response_headers=REPLAYED,
)
async def create_transfer(
    request: Request[Any, Any, Any],
    data: JSONBody[TransferCreate],
    transfers: NamedDependency[Transfers],
    idempotency_key: IdempotencyKey = None,  # documented and checked here; read by idempotency()
) -> Response[TransferView]:
    who = principal(request)
    eta = parse_eta("eta", data.eta) if data.eta is not None else None
    lines = sum_supply_lines((line.sku, line.qty) for line in data.lines)
    doc, replayed = await transfers.create(
        who, data.from_, data.to, eta, lines, data.ref, lambda: idempotency(request, who, data)
    )
    return replayable(doc, 201, replayed)


@get("/{transfer_id:str}", summary="Read a transfer", responses=responses(404, 422))
async def get_transfer(
    transfer_id: TransferId, transfers: NamedDependency[Transfers]
) -> TransferView:
    return await transfers.get(transfer_id)


@get("/", summary="List transfers, newest first (paged)", responses=responses(422))
async def list_transfers(
    transfers: NamedDependency[Transfers],
    location: IdentifierQuery = None,  # transfers from or to this location
    status: Annotated[TransferStatus | None, QueryParameter()] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    before: Annotated[
        str | None,
        QueryParameter(
            pattern=TRANSFER_ID_PATTERN,
            description="`next` of the previous page: items older than that transfer (else 422)",
        ),
    ] = None,
) -> TransferPage:
    items, more = await transfers.page(location, status, before, limit)
    return TransferPage(items=items, next=items[-1].id if more else None)


@post(
    "/{transfer_id:str}/receive",
    summary="Receive a transfer at its destination (partly, fully, or beyond what was sent)",
    description="`to`'s on_hand += received; incoming -= the outstanding part of it. A "
    "finished transfer: 409 with `transfer_status`.",
    status_code=200,
    request_max_body_size=ADJUSTMENTS_BODY_BYTES,
    responses=responses(403, 404, 409, 413, 422),
    response_headers=REPLAYED,
)
async def receive_transfer(
    request: Request[Any, Any, Any],
    transfer_id: TransferId,
    transfers: NamedDependency[Transfers],
    data: JSONBody[TransferReceive | None] = None,
    idempotency_key: IdempotencyKey = None,  # documented and checked here; read by idempotency()
) -> Response[TransferView]:
    who = principal(request)
    body = data or TransferReceive()
    lines = None
    if body.lines is not None:
        lines = sum_supply_lines((line.sku, line.qty) for line in body.lines)
    doc, replayed = await transfers.receive(
        who, transfer_id, lines, body.over_receipt, lambda: idempotency(request, who, body)
    )
    return replayable(doc, 200, replayed)


@post(
    "/{transfer_id:str}/cancel",
    summary="Cancel a transfer nothing of which was received: the units go back to `from`",
    description="Once units were received, or when finished: 409 with `transfer_status`.",
    status_code=200,
    responses=responses(403, 404, 409, 413, 422),
    response_headers=REPLAYED,
)
async def cancel_transfer(
    request: Request[Any, Any, Any],
    transfer_id: TransferId,
    transfers: NamedDependency[Transfers],
    idempotency_key: IdempotencyKey = None,  # documented and checked here; read by idempotency()
) -> Response[TransferView]:
    who = principal(request)
    doc, replayed = await transfers.cancel(
        who, transfer_id, lambda: idempotency(request, who, None)
    )
    return replayable(doc, 200, replayed)


transfers_router = Router(
    "/v1/transfers",
    route_handlers=[
        create_transfer,
        get_transfer,
        list_transfers,
        receive_transfer,
        cancel_transfer,
    ],
    tags=["transfers"],
    dto=StrictBody,
)
