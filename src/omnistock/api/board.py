"""The live stock board: a static page (``web/``) at ``/``, its assets under ``/board``."""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

from litestar import MediaType, Response, get
from litestar.static_files import create_static_files_router

WEB = Path(str(resources.files("omnistock") / "web"))


@functools.cache
def _page() -> bytes:
    return (WEB / "index.html").read_bytes()


@get("/", include_in_schema=False, media_type=MediaType.HTML)
async def board_page() -> Response[bytes]:
    """The board; it asks for an API key in the browser and talks to /v1 like any client."""
    return Response(_page(), media_type=MediaType.HTML, headers={"Cache-Control": "no-cache"})


board_assets = create_static_files_router("/board", [WEB], include_in_schema=False)
