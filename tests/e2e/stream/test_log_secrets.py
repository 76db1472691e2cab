"""API keys never reach the server's log (defect 7): uvicorn logs every WebSocket handshake with
its query string, so ``?api_key=`` went to the log as it was sent."""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from omnistock.app import create_app
from omnistock.logs import MASK, RedactSecrets, redact
from omnistock.settings import Settings
from tests.conftest import Servers
from tests.e2e.stream.served import served


async def test_served_log_never_holds_an_api_key(servers: Servers, tmp_path: Path) -> None:
    admin_key = "test-admin-" + secrets.token_hex(12)  # not osk_-shaped: api_key= must catch it
    wrong = "osk_" + secrets.token_hex(16)
    log = tmp_path / "serve.log"
    async with served(servers, log, admin_key, log_level="debug") as app:
        async with httpx.AsyncClient(
            base_url=app.url, headers={"Authorization": f"Bearer {admin_key}"}
        ) as admin:
            made = await admin.post("/v1/keys", json={"name": "log-test", "role": "feed"})
            assert made.status_code == 201, made.text
            feed_key = made.json()["key"]
        for key in (admin_key, feed_key):
            async with connect(f"{app.ws_url}?api_key={key}") as ws:
                await ws.send('{"op":"subscribe","id":"s","skus":["x"]}')
                assert '"subscribed"' in str(await ws.recv())
            async with connect(app.ws_url, additional_headers={"Authorization": f"Bearer {key}"}):
                pass
        with pytest.raises(InvalidStatus) as refused:
            async with connect(f"{app.ws_url}?api_key={wrong}&x=1"):
                pass
        assert refused.value.response.status_code == 401
        with pytest.raises(InvalidStatus):  # a percent-encoded parameter name works too
            async with connect(f"{app.ws_url}?api%5Fkey={wrong}"):
                pass
    out = log.read_text()
    # The handshakes were logged (debug level), with the keys masked.
    assert f'"WebSocket /v1/stream?api_key={MASK}" [accepted]' in out, out
    assert f'"WebSocket /v1/stream?api_key={MASK}&x=1" 401' in out, out
    for key in (admin_key, feed_key, wrong):
        assert key not in out, out


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        ('127.0.0.1:5 - "WebSocket /v1/stream?api_key=abc123&x=1" [accepted]', "abc123"),
        ("GET /v1/stream?API_KEY=s3cr3t", "s3cr3t"),
        ("GET /v1/stream?api%5fkey=s3cr3t", "s3cr3t"),
        ("headers: {'authorization': 'Bearer s3cr3t'}", "s3cr3t"),
        ("Authorization: Bearer s3cr3t", "s3cr3t"),
        ("[(b'authorization', b'bearer s3cr3t')]", "s3cr3t"),
        ("key osk_0123456789abcdef0123 seen", "osk_0123456789abcdef0123"),
    ],
)
def test_redact_masks_each_form(line: str, secret: str) -> None:
    assert secret not in redact(line)
    assert MASK in redact(line)


def test_filter_masks_arguments_tracebacks_and_keeps_access_args_a_tuple() -> None:
    redactor = RedactSecrets()
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, "f", 1, '%s - "%s %s"', ("c", "GET", "/x?api_key=k1"), None
    )
    assert redactor.filter(record)
    assert record.args == ("c", "GET", f"/x?api_key={MASK}")
    try:
        raise ValueError("bad url /v1/stream?api_key=k2")
    except ValueError as exc:
        record = logging.LogRecord("x", logging.ERROR, "f", 1, "failed: %s", (exc,), None)
        record.exc_info = (type(exc), exc, exc.__traceback__)
    assert redactor.filter(record)
    assert "k2" not in record.getMessage() and "k2" not in (record.exc_text or "")
    assert "k2" not in logging.Formatter().format(record)


def test_the_app_masks_keys_in_litestar_and_root_handlers() -> None:
    """Litestar replaces the root logger's handlers when the app is made: the filter must be on
    the new ones (omnistock's own loggers log through them)."""
    create_app(Settings(redis_url="redis://127.0.0.1:1", database_url="postgresql://x@y/z"))
    handlers = [*logging.getLogger().handlers, *logging.getLogger("litestar").handlers]
    assert handlers
    for handler in handlers:
        assert any(isinstance(f, RedactSecrets) for f in handler.filters), handler
