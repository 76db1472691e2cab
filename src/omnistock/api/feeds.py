"""Feeds: ``GET /v1/feeds/local-inventory``, streamed TSV (Google local product inventory)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from litestar import Request, Router, get
from litestar.datastructures import ResponseHeader
from litestar.params import QueryParameter
from litestar.response import Stream

from omnistock.api.auth import principal, services
from omnistock.api.openapi import responses
from omnistock.domain.errors import ValidationFailed
from omnistock.domain.ids import IDENTIFIER_PATTERN
from omnistock.domain.roles import require_feed
from omnistock.feeds import google_local

CURSOR_HEADER = "Omnistock-Cursor"
Filter = Annotated[
    str | None,
    QueryParameter(
        pattern=IDENTIFIER_PATTERN, description="location or group, not both (else 422)"
    ),
]


@get(
    "/local-inventory",
    summary="Google local inventory feed (TSV, streamed)",
    description=(
        "One row per position: store_code, id, quantity (available), availability. "
        f"The `{CURSOR_HEADER}` header is a stream cursor taken before the first row was read: "
        "subscribe with it as `since` to keep a copy current without missing a change."
    ),
    media_type=google_local.MEDIA_TYPE,
    responses=responses(403, 404, 422),
    response_headers=[
        ResponseHeader(
            name=CURSOR_HEADER,
            documentation_only=True,
            required=True,
            description="a stream cursor taken before the first row was read",
        )
    ],
)
async def local_inventory(
    request: Request[Any, Any, Any], location: Filter = None, group: Filter = None
) -> Stream:
    svc = services(request)
    require_feed(principal(request))
    if location is not None and group is not None:
        raise ValidationFailed("group", "give location or group, not both")
    if location is not None:
        locations = [await svc.locations.require(location)]
    elif group is not None:
        locations = sorted(svc.locations.by_group.get(group, []), key=lambda loc: loc.id)
    else:
        locations = svc.locations.all()
    cursor = svc.fanout.cursor()  # before reading: every change after it is replayed on resume
    rows = google_local.chunks(svc.store, locations)
    first = await anext(rows, "")  # a store error here is still a clean 503 problem

    async def body() -> AsyncIterator[str]:
        yield google_local.HEADER + first
        async for chunk in rows:
            yield chunk

    return Stream(
        body(),
        media_type=google_local.MEDIA_TYPE,
        headers={CURSOR_HEADER: cursor, "Cache-Control": "no-store"},
    )


feeds_router = Router("/v1/feeds", route_handlers=[local_inventory], tags=["feeds"])
