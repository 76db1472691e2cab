"""Stock positions: read one, set one absolutely (cycle count), apply adjustments."""

from __future__ import annotations

import re
from typing import Annotated, Any

from litestar import Request, Response, Router, get, post, put
from litestar.di import NamedDependency
from litestar.params import HeaderParameter, JSONBody
from msgspec import UNSET

from omnistock.api.auth import principal
from omnistock.api.body import StrictBody
from omnistock.api.idempotency import idempotency
from omnistock.api.limits import ADJUSTMENTS_BODY_BYTES
from omnistock.api.openapi import ETAG, REPLAYED, responses
from omnistock.api.responses import replayable
from omnistock.api.schemas import (
    AdjustmentsIn,
    IdempotencyKey,
    LocationPath,
    MovesIn,
    SkuPath,
    StockPut,
)
from omnistock.domain.commands import Adjustment, Count, Move
from omnistock.domain.errors import ValidationFailed
from omnistock.domain.roles import require_stock_write
from omnistock.domain.stock import Position
from omnistock.usecases.stock import Stock

IfMatch = Annotated[
    str | None,
    HeaderParameter(
        name="If-Match",
        # What expected_version() reads: `*`, or digits, quoted or W/-prefixed.
        pattern=r'^(\*|(W/)?"*[0-9]+"*)(?!\n)$',
        description='the version the position must be at (412 if not), e.g. 3 or "3"; '
        "a number no version reaches (over 15 digits) is a 412 too",
    ),
]


# ASCII digits only (str.isdigit() also takes "²", which int() refuses), of any length: a longer
# number is a well-formed version no position can be at.
_VERSION = re.compile(r"[0-9]+")
_VERSION_DIGITS = 15  # versions stay far below 10^15 (and exact in Lua's doubles)
NO_VERSION = -1  # what set.lua compares with for such a version: never equal, so a 412


def expected_version(if_match: str | None) -> int | None:
    """The version an ``If-Match`` header asks for: None for none or ``*``; 422 naming the
    header when it is not a version; :data:`NO_VERSION` for a number no version can reach."""
    if if_match is None or if_match.strip() == "*":
        return None
    value = if_match.strip().removeprefix("W/").strip('"')
    if _VERSION.fullmatch(value) is None:
        raise ValidationFailed("If-Match", 'must be a position version, e.g. 3 or "3"')
    digits = value.lstrip("0")
    return int(digits or "0") if len(digits) <= _VERSION_DIGITS else NO_VERSION


@get(
    "/{location_id:str}/{sku:str}",
    summary="Read one position",
    responses=responses(404, 422),
    response_headers=[ETAG],
)
async def get_position(
    location_id: LocationPath, sku: SkuPath, stock: NamedDependency[Stock]
) -> Response[Position]:
    pos = await stock.position(location_id, sku)
    return Response(pos, headers={"ETag": f'"{pos.version}"'})


@put(
    "/{location_id:str}/{sku:str}",
    summary="Set on_hand absolutely (cycle count)",
    responses=responses(403, 404, 412, 413, 422),
    response_headers=[ETAG, *REPLAYED],
)
async def put_position(
    request: Request[Any, Any, Any],
    location_id: LocationPath,
    sku: SkuPath,
    data: JSONBody[StockPut],
    stock: NamedDependency[Stock],
    if_match: IfMatch = None,
    idempotency_key: IdempotencyKey = None,  # documented and checked here; read by idempotency()
) -> Response[Position]:
    who = principal(request)
    require_stock_write(who, location_id)
    expected = expected_version(if_match)
    # Count.safety_stock: None keeps the position's own value, -1 drops it.
    own: int | None = None
    if data.safety_stock is None:
        own = -1
    elif data.safety_stock is not UNSET:
        own = data.safety_stock
    count = Count(
        location=location_id,
        sku=sku,
        on_hand=data.on_hand,
        safety_stock=own,
        expected_version=expected,
        reason=data.reason,
        ref=data.ref,
    )
    pos, replayed = await stock.count(
        count, who.name, lambda: idempotency(request, who, (data, expected))
    )
    response = replayable(pos, 200, replayed)
    response.headers["ETag"] = f'"{pos.version}"'
    return response


@post(
    "/adjustments",
    summary="Apply stock deltas (receipts, sales, returns...)",
    description="An item with `state: unsellable` changes on_hand and unsellable together; "
    "taking off more unsellable units than there are is a 409 with `shortages`.",
    status_code=200,
    request_max_body_size=ADJUSTMENTS_BODY_BYTES,
    responses=responses(403, 404, 409, 413, 422),
    response_headers=REPLAYED,
)
async def post_adjustments(
    request: Request[Any, Any, Any],
    data: JSONBody[AdjustmentsIn],
    stock: NamedDependency[Stock],
    idempotency_key: IdempotencyKey = None,  # documented and checked here; read by idempotency()
) -> Response[dict[str, list[Position]]]:
    who = principal(request)
    for i, item in enumerate(data.adjustments):
        if item.delta == 0:
            raise ValidationFailed(f"adjustments[{i}].delta", "must not be 0")
    for item in data.adjustments:
        require_stock_write(who, item.location)
    items = [
        Adjustment(a.location, a.sku, a.delta, a.reason, a.ref, a.state) for a in data.adjustments
    ]
    positions, replayed = await stock.adjust(
        items, who.name, lambda: idempotency(request, who, data)
    )
    return replayable({"results": positions}, 200, replayed)


@post(
    "/moves",
    summary="Move units on hand between sellable and unsellable",
    description="Each location's items are applied all or none; more than the source state "
    "holds (sellable = on_hand - unsellable) is a 409 with `shortages` and changes nothing.",
    status_code=200,
    request_max_body_size=ADJUSTMENTS_BODY_BYTES,
    responses=responses(403, 404, 409, 413, 422),
    response_headers=REPLAYED,
)
async def post_moves(
    request: Request[Any, Any, Any],
    data: JSONBody[MovesIn],
    stock: NamedDependency[Stock],
    idempotency_key: IdempotencyKey = None,  # documented and checked here; read by idempotency()
) -> Response[dict[str, list[Position]]]:
    who = principal(request)
    for item in data.moves:
        require_stock_write(who, item.location)
    items = [Move(m.location, m.sku, m.qty, m.to, m.reason, m.ref) for m in data.moves]
    positions, replayed = await stock.move(items, who.name, lambda: idempotency(request, who, data))
    return replayable({"results": positions}, 200, replayed)


stock_router = Router(
    "/v1/stock", route_handlers=[get_position, put_position], tags=["stock"], dto=StrictBody
)
adjustments_router = Router(
    "/v1", route_handlers=[post_adjustments, post_moves], tags=["stock"], dto=StrictBody
)
