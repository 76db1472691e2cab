"""``POST /v1/stock:import``: absolute on_hand per position from CSV or NDJSON, streamed."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Request, post

from omnistock.api.auth import principal, services
from omnistock.api.openapi import StreamedImport, responses
from omnistock.domain.roles import Role, require_stock_writer
from omnistock.imports import ImportLimits, ImportResult, format_for, import_stream
from omnistock.services import Services


def backlog_pacer(svc: Services, max_wait: float = 30.0) -> Any:
    """Between batches, let the persister catch up to half the backlog limit (a big import should
    not pause every other writer); after ``max_wait`` the write gate decides."""

    async def pace() -> None:
        waited = 0.0
        while svc.gate.backlog > svc.gate.limit // 2 and waited < max_wait:
            await asyncio.sleep(0.1)
            waited += 0.1

    return pace


@post(
    "/v1/stock:import",
    summary="Bulk-set on_hand from CSV (location,sku,on_hand[,safety_stock]) or NDJSON",
    status_code=200,
    request_max_body_size=None,
    tags=["stock"],
    operation_class=StreamedImport,
    responses=responses(403, 413, 422),
)
async def import_stock(request: Request[Any, Any, Any]) -> ImportResult:
    svc, who = services(request), principal(request)
    fmt = format_for(request.headers.get("content-type"))
    require_stock_writer(who)  # per location below, line by line

    def allowed(location: str) -> str | None:
        if location not in svc.locations.by_id:
            return f"unknown location {location!r}"
        if who.role is Role.STORE and location not in who.locations:
            return f"this store key may not change stock at location {location!r}"
        return None

    return await import_stream(
        request.stream(),
        fmt,
        svc.store,
        who.name,
        allowed=allowed,
        pace=backlog_pacer(svc),
        limits=ImportLimits.from_settings(svc.settings),
    )
