"""The HTTP/1.1 protocol ``omnistock serve`` runs: uvicorn's httptools protocol with two guards it
lacks.

- **Header size**: a request whose request line and headers pass ``http_max_header_bytes`` is
  answered 431 and the connection closed. httptools buffers a header until it is complete, so the
  raw bytes received while headers are still incomplete are bounded too (one huge header never
  piles up in memory).
- **Header arrival**: a request's request line and headers must arrive within
  ``http_request_timeout_seconds`` of its first byte (408, then close); a connection that sends
  nothing for that long is closed. The time taken is put in the scope, so the body's deadline
  (:mod:`omnistock.api.guards`) counts only what is left. A response sent before its request's
  body arrived (a 401, a 413) leaves the rest of the body the same time to arrive, else the
  connection is closed (uvicorn's keep-alive timer restarts on every byte, so a body dribbled a
  byte at a time would hold the connection forever).

The limits come from the ``OMNISTOCK_*`` environment, read once per process (uvicorn builds a
protocol per connection and spawns its workers with only the environment).
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import httptools
import msgspec
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

HEADER_WAIT_KEY = "omnistock.header_wait"  # seconds the request's headers took to arrive
_encode = msgspec.json.Encoder().encode


@functools.cache
def _limits() -> tuple[int, float]:
    from omnistock.settings import load_settings

    settings = load_settings()
    return settings.http_max_header_bytes, settings.http_request_timeout_seconds


class _HeadersTooLarge(Exception):
    pass


def problem_bytes(status: int, slug: str, title: str, detail: str) -> bytes:
    """A complete HTTP/1.1 problem+json response that closes the connection."""
    body = _encode(
        {
            "type": f"urn:omnistock:problem:{slug}",
            "title": title,
            "status": status,
            "detail": detail,
        }
    )
    return b"".join(
        [
            STATUS_LINE[status],
            b"content-type: application/problem+json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
            body,
        ]
    )


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header size limit and a header arrival deadline."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_header_bytes, self.request_timeout = _limits()
        self._in_headers = True  # between a message's start (or the connection's) and its headers
        self._raw_header_bytes = 0  # bytes received while in headers (bounds httptools' buffer)
        self._header_bytes = 0  # request line and headers as parsed
        self._started = 0.0
        self._deadline: asyncio.TimerHandle | None = None

    # Deadlines
    def _arm(self, callback: Any) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.request_timeout, callback)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _reject(self, status: int, slug: str, title: str, detail: str) -> None:
        self._disarm()
        busy = self.cycle is not None and not self.cycle.response_complete
        if not busy and not self.transport.is_closing():
            # Nothing else is being written on this connection: say why before closing.
            self.transport.write(problem_bytes(status, slug, title, detail))
        self.transport.close()

    def _headers_late(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self.flow.read_paused:  # our own back-pressure (pipelining): not the client's delay
            self._arm(self._headers_late)
            return
        if self._raw_header_bytes == 0 and self._header_bytes == 0:
            self.transport.close()  # an idle connection: nothing to answer
            return
        self._reject(
            408,
            "request-timeout",
            "Request timeout",
            f"the request's headers did not arrive within {self.request_timeout:g} s",
        )

    def _body_late(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    # Protocol interface
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self._headers_late)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        counted = self._in_headers
        if counted:
            self._raw_header_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self._disarm()
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError as exc:
            if isinstance(exc.__context__, _HeadersTooLarge):
                self._too_large()
                return
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self._disarm()
            self.send_400_response(msg)
            return
        if counted and self._in_headers and self._raw_header_bytes > self.max_header_bytes:
            self._too_large()

    def _too_large(self) -> None:
        self._reject(
            431,
            "headers-too-large",
            "Request header fields too large",
            f"the request line and headers may not exceed {self.max_header_bytes} bytes",
        )

    # Parser callbacks
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers = True
        self._header_bytes = 0
        self._started = self.loop.time()
        self._arm(self._headers_late)

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)  # ": " and CRLF
        super().on_header(name, value)

    def _count(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > self.max_header_bytes:
            raise _HeadersTooLarge

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._raw_header_bytes = 0
        self._disarm()
        self.scope[HEADER_WAIT_KEY] = self.loop.time() - self._started  # type: ignore[literal-required]
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        self._in_headers = True
        self._raw_header_bytes = 0
        self._header_bytes = 0
        super().on_message_complete()
        cycle = self.cycle
        if cycle is not None and cycle.response_complete and self.timeout_keep_alive_task is None:
            # The body's tail came after the response (whose keep-alive timer any byte cancels):
            # the connection is idle until the next request, which gets the usual time.
            self._arm(self._headers_late)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        cycle = self.cycle
        if cycle is not None and cycle.more_body and not self.transport.is_closing():
            # Answered before its body arrived: the rest has the same time, then we close.
            self._arm(self._body_late)
