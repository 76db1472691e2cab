"""The audit ledger of a position, from Postgres: every movement, newest first, with who did it."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Router, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from omnistock.api.openapi import responses
from omnistock.api.schemas import LocationPath, SkuPath
from omnistock.domain.clock import rfc3339
from omnistock.usecases.history import History as HistoryUseCase

# '<partition>:<stream id ms-seq>' (postgres/migrations/0002_ledger.sql); anything else is a 422
# here rather than a value Postgres might refuse.
EVENT_ID_PATTERN = r"^[0-9]{1,5}:[0-9]{1,20}-[0-9]{1,20}(?!\n)$"


_RETAINED_SINCE = (
    "RFC 3339 instant from which this history is complete: events before it may have been"
    " deleted by retention (OMNISTOCK_LEDGER_RETENTION_DAYS, whole months and then rows);"
    " null when the ledger was never pruned"
)


class HistoryItem(msgspec.Struct, kw_only=True):
    event_id: str
    ts: str
    kind: str
    reason: str
    ref: str | None
    actor: str
    delta_on_hand: int
    delta_reserved: int
    on_hand: int
    reserved: int
    version: int
    reservation_id: str | None
    delta_unsellable: int = 0
    unsellable: int = 0
    delta_incoming: int = 0
    incoming: int = 0


class History(msgspec.Struct, kw_only=True):
    items: list[HistoryItem]
    next: str | None
    # How far back the ledger is complete (see _RETAINED_SINCE).
    retained_since: Annotated[str | None, msgspec.Meta(description=_RETAINED_SINCE)] = None


@get(
    "/{location_id:str}/{sku:str}/history",
    summary="Audit ledger of a position (newest first)",
    responses=responses(404, 422),
)
async def position_history(
    history: NamedDependency[HistoryUseCase],
    location_id: LocationPath,
    sku: SkuPath,
    limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    before: Annotated[
        str | None,
        QueryParameter(
            pattern=EVENT_ID_PATTERN,
            description="`event_id` of an item (`next`) of this position's history (else 422)",
        ),
    ] = None,
) -> History:
    rows, more, since = await history.page(location_id, sku, before, limit)
    items = [
        HistoryItem(
            event_id=r["event_id"],
            ts=rfc3339(r["ts_ms"]),
            kind=r["kind"],
            reason=r["reason"],
            ref=r["ref"],
            actor=r["actor"],
            delta_on_hand=r["delta_on_hand"],
            delta_reserved=r["delta_reserved"],
            on_hand=r["on_hand"],
            reserved=r["reserved"],
            version=r["version"],
            reservation_id=r["reservation_id"],
            delta_unsellable=r["delta_unsellable"],
            unsellable=r["unsellable"],
            delta_incoming=r["delta_incoming"],
            incoming=r["incoming"],
        )
        for r in rows
    ]
    return History(
        items=items,
        next=items[-1].event_id if more else None,
        retained_since=rfc3339(since) if since is not None else None,
    )


history_router = Router("/v1/stock", route_handlers=[position_history], tags=["stock"])
