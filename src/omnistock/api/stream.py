"""WebSocket ``/v1/stream``: subscribe to position changes, resume with cursors (API.md).

One handler per client runs two tasks: the receiver applies ``subscribe``/``unsubscribe``
messages (a bad one gets an ``error`` message, the connection stays open) and the sender drains
the client's outbox. When the fan-out drops a client, the socket is closed with the reason and a
code: 1008 (too slow), 4401 (its API key was deleted). A connection past the process's limits is
closed at once: 4429 (its key has the most connections allowed), 1013 (the process has).
Per-message limits (size, subscriptions, filter entries) answer with an ``error`` message.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import msgspec
from litestar import WebSocket, websocket
from litestar.di import NamedDependency
from litestar.enums import ScopeType
from litestar.exceptions import NotAuthorizedException
from litestar.types import ASGIApp, Receive, Scope, Send

from omnistock.api.auth import presented_key, principal
from omnistock.api.body import check_utf8
from omnistock.api.errors import PROBLEM_JSON
from omnistock.api.schemas import Identifier
from omnistock.usecases.stream import Connection, Refused, Stream


class SubscribeOp(msgspec.Struct, tag="subscribe", tag_field="op", kw_only=True):
    id: Identifier
    # Sizes are bounded by the settings (ws_max_filter_entries, ws_max_message_bytes).
    skus: list[Identifier] | None = None
    locations: list[Identifier] | None = None
    groups: list[Identifier] | None = None
    status_only: bool = False
    since: str | None = None


class UnsubscribeOp(msgspec.Struct, tag="unsubscribe", tag_field="op"):
    id: Identifier


class _IdProbe(msgspec.Struct):
    id: Any = None


_decode_op = msgspec.json.Decoder(SubscribeOp | UnsubscribeOp).decode
_decode_probe = msgspec.json.Decoder(_IdProbe).decode
_encode = msgspec.json.Encoder().encode


def _validation_detail(exc: msgspec.ValidationError) -> str:
    """msgspec's ``... - at `$.skus[0]``` as ``skus[0]: ...``."""
    text, _, path = str(exc).rpartition(" - at `$")
    if not text:
        return str(exc)
    field = path.rstrip("`").lstrip(".")
    if field == "op":
        return "op: must be 'subscribe' or 'unsubscribe'"
    return f"{field}: {text}"


def _id_of(raw: str | bytes) -> dict[str, str]:
    """The ``id`` of a message that failed validation, when it has a usable one."""
    try:
        found = _decode_probe(raw).id
    except (msgspec.DecodeError, RecursionError):
        return {}
    return {"id": found} if isinstance(found, str) else {}


def _size(raw: str | bytes, limit: int) -> int:
    """The size of ``raw`` in bytes, or any number past ``limit`` when it is past it (a
    character takes 1 to 4 bytes: encode only when the answer depends on it)."""
    if isinstance(raw, bytes) or len(raw) > limit or len(raw) * 4 <= limit:
        return len(raw)
    return len(raw.encode())


async def handle_message(stream: Stream, conn: Connection, raw: str | bytes) -> None:
    """Apply one client message; anything wrong with it becomes an ``error`` message."""
    settings = stream.settings
    if _size(raw, settings.ws_max_message_bytes) > settings.ws_max_message_bytes:
        conn.push_control(
            "error",
            detail=f"message larger than {settings.ws_max_message_bytes} bytes "
            "(ws_max_message_bytes)",
        )
        return
    try:
        if isinstance(raw, bytes):
            check_utf8(raw)  # a binary frame: msgspec skips unknown members unchecked
        op = _decode_op(raw)
    except UnicodeDecodeError:
        conn.push_control("error", detail="malformed JSON: not UTF-8")
        return
    except msgspec.ValidationError as exc:  # (a DecodeError too: test it first)
        conn.push_control("error", detail=_validation_detail(exc), **_id_of(raw))
        return
    except msgspec.DecodeError as exc:
        conn.push_control("error", detail=f"malformed JSON: {exc}")
        return
    except RecursionError:  # msgspec's own depth limit; the connection stays open
        conn.push_control("error", detail="malformed JSON: nested too deeply")
        return
    if isinstance(op, UnsubscribeOp):
        if not stream.unsubscribe(conn, op.id):
            conn.push_control("error", detail=f"no subscription with id {op.id!r}", id=op.id)
        return
    try:
        await stream.subscribe(
            conn, op.id, op.skus, op.locations, op.groups, op.status_only, op.since
        )
    except Refused as exc:
        conn.push_control("error", detail=str(exc), id=op.id)


async def _receive(socket: WebSocket[Any, Any, Any], stream: Stream, conn: Connection) -> None:
    while True:
        event = await socket.receive()
        if event["type"] == "websocket.disconnect":
            return
        if event["type"] == "websocket.receive":
            text = event.get("text")
            raw = text if text is not None else event.get("bytes") or b""
            await handle_message(stream, conn, raw)


async def _send(socket: WebSocket[Any, Any, Any], conn: Connection) -> None:
    loop = asyncio.get_running_loop()
    while (message := await conn.next_message()) is not None:
        conn.sending_since = loop.time()
        await socket.send_data(message)
        conn.sending_since = 0.0
        conn.sent += 1


@websocket("/v1/stream")
async def stream_socket(socket: WebSocket[Any, Any, Any], stream: NamedDependency[Stream]) -> None:
    """Position changes as they happen (see API.md, "Change stream")."""
    stall = stream.settings.ws_stall_seconds
    who = principal(socket)
    await socket.accept()
    refused = stream.refusal(who)
    if refused is not None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(socket.close(*refused), stall)
        return
    conn = stream.connect(who, presented_key(socket))
    tasks = [
        asyncio.create_task(_receive(socket, stream, conn)),
        asyncio.create_task(_send(socket, conn)),
        asyncio.create_task(conn.closed.wait()),
    ]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        reason, code = conn.close_reason, conn.close_code
        stream.disconnect(conn)
    if reason is not None:
        # A slow client gets the close frame (and its reason) after what it still has to read;
        # a frozen one never takes it: give up after the stall limit (its outbox is freed).
        with contextlib.suppress(Exception):
            await asyncio.wait_for(socket.close(code, reason), stall)


def websocket_denials(app: ASGIApp) -> ASGIApp:
    """A WebSocket handshake without a valid API key gets a real HTTP 401 problem (the ASGI
    ``websocket.http.response`` extension) instead of the server's bare 403."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.WEBSOCKET or "websocket.http.response" not in (
            scope.get("extensions") or {}
        ):
            await app(scope, receive, send)
            return
        try:
            await app(scope, receive, send)
        except NotAuthorizedException as exc:
            body = _encode(
                {
                    "type": "urn:omnistock:problem:unauthorized",
                    "title": "Missing or unknown API key",
                    "status": 401,
                    "detail": exc.detail,
                }
            )
            headers = [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"www-authenticate", b'Bearer realm="omnistock"'),
            ]
            await send({"type": "websocket.http.response.start", "status": 401, "headers": headers})
            await send({"type": "websocket.http.response.body", "body": body, "more_body": False})

    return middleware
