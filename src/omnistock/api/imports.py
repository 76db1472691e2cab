"""``POST /v1/stock:import``: absolute on_hand per position from CSV or NDJSON, streamed."""

from __future__ import annotations

from typing import Any

from litestar import Request, post
from litestar.di import NamedDependency

from omnistock.api.auth import principal
from omnistock.api.openapi import StreamedImport, responses
from omnistock.domain.roles import require_stock_writer
from omnistock.usecases.imports import ImportResult, Imports, format_for


@post(
    "/v1/stock:import",
    summary="Bulk-set on_hand from CSV (location,sku,on_hand[,safety_stock]) or NDJSON",
    status_code=200,
    request_max_body_size=None,
    tags=["stock"],
    operation_class=StreamedImport,
    responses=responses(403, 413, 422),
)
async def import_stock(
    request: Request[Any, Any, Any], imports: NamedDependency[Imports]
) -> ImportResult:
    who = principal(request)
    fmt = format_for(request.headers.get("content-type"))
    require_stock_writer(who)  # per location below, line by line
    return await imports.run(request.stream(), fmt, who)
