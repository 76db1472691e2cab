"""Guards of the HTTP server in the app: the request body's arrival deadline (a middleware) and
the security headers (a ``send`` wrapper applied outside Litestar, see ``OmnistockApp``)."""

from __future__ import annotations

import asyncio
import hashlib
from base64 import b64encode
from collections.abc import Iterable
from typing import Any

from litestar.enums import ScopeType
from litestar.exceptions import HTTPException
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from omnistock.api.protocol import HEADER_WAIT_KEY


class RequestTimeout(HTTPException):
    """The request's body did not arrive in time: 408, and the connection is closed."""

    status_code = 408


def body_deadline(timeout: float) -> Any:
    """Middleware factory: the time spent waiting for a request's body (after the time its headers
    took, see :mod:`omnistock.api.protocol`) may not pass ``timeout`` seconds in total. Time the
    handler spends working between reads (a streamed import) does not count: only waiting for the
    client does. Past it: 408 problem (connection closed), or the connection is closed when the
    response has already started."""

    def middleware(app: ASGIApp) -> ASGIApp:
        async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP:
                await app(scope, receive, send)
                return
            waited: float = scope.get(HEADER_WAIT_KEY, 0.0)  # type: ignore[assignment]
            left = timeout - waited
            loop = asyncio.get_running_loop()

            async def timed_receive() -> Any:
                nonlocal left
                started = loop.time()
                try:
                    async with asyncio.timeout(max(left, 0.0)):
                        return await receive()
                except TimeoutError:
                    raise RequestTimeout(
                        detail=f"the request did not arrive in full within {timeout:g} s",
                        headers={"Connection": "close"},
                    ) from None
                finally:
                    left -= loop.time() - started

            await app(scope, timed_receive, send)

        return guarded

    return middleware


def _sha256(source: str) -> str:
    return "'sha256-" + b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


def page_policy(inline_scripts: Iterable[str] = ()) -> str:
    """The Content-Security-Policy of the board and the docs: everything from this origin only,
    no plugins, no framing, no inline script except the exact ``inline_scripts`` (by hash)."""
    scripts = " ".join(["'self'", *(_sha256(s) for s in inline_scripts)])
    return "; ".join(
        [
            "default-src 'self'",
            f"script-src {scripts}",
            "style-src 'self'",
            "img-src 'self' data:",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


_PAGE_PREFIXES = ("/board/", "/docs")
NOSNIFF = (b"x-content-type-options", b"nosniff")


def security_headers(policy: str) -> Any:
    """``wrap(scope, send)``: a ``send`` that adds the security headers to the response. Every HTTP
    response says ``nosniff``; the pages (``/``, ``/board/...``, ``/docs...``) also get ``policy``
    as their Content-Security-Policy, no referrer and no framing. Applied outside Litestar (see
    ``OmnistockApp``), so answers rendered outside the middleware stack (a 401, a 404) get them
    too."""
    page_headers = [
        (b"content-security-policy", policy.encode()),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"no-referrer"),
        NOSNIFF,
    ]
    other_headers = [NOSNIFF]

    def wrap(scope: Scope, send: Send) -> Send:
        path = scope["path"]
        extra = page_headers if path == "/" or path.startswith(_PAGE_PREFIXES) else other_headers

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        return send_with_headers

    return wrap
