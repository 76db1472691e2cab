"""Feeds: ``GET /v1/feeds/local-inventory``, streamed TSV (Google local product inventory)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from litestar import Request, Router, get
from litestar.datastructures import ResponseHeader
from litestar.di import NamedDependency
from litestar.params import QueryParameter
from litestar.response import Stream

from omnistock.api.auth import principal
from omnistock.api.openapi import responses
from omnistock.domain.errors import ValidationFailed
from omnistock.domain.ids import IDENTIFIER_PATTERN
from omnistock.domain.roles import require_feed
from omnistock.usecases.feeds import GOOGLE_LOCAL_HEADER, GOOGLE_LOCAL_MEDIA_TYPE, Feeds

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
    media_type=GOOGLE_LOCAL_MEDIA_TYPE,
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
    request: Request[Any, Any, Any],
    feeds: NamedDependency[Feeds],
    location: Filter = None,
    group: Filter = None,
) -> Stream:
    require_feed(principal(request))
    if location is not None and group is not None:
        raise ValidationFailed("group", "give location or group, not both")
    locations = await feeds.locations(location, group)
    cursor = await feeds.cursor()  # before reading: every change after it is replayed on resume
    rows = feeds.google_local_rows(locations)
    first = await anext(rows, "")  # a store error here is still a clean 503 problem

    async def body() -> AsyncIterator[str]:
        yield GOOGLE_LOCAL_HEADER + first
        async for chunk in rows:
            yield chunk

    return Stream(
        body(),
        media_type=GOOGLE_LOCAL_MEDIA_TYPE,
        headers={CURSOR_HEADER: cursor, "Cache-Control": "no-store"},
    )


feeds_router = Router("/v1/feeds", route_handlers=[local_inventory], tags=["feeds"])
