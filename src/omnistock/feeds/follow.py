"""``omnistock feed follow``: keep a local-inventory TSV file current from the change stream.

1. Full sync: download the feed (its ``Omnistock-Cursor`` header is a cursor taken before the
   first row was read), write the file, save the cursor next to it (``FILE.cursor``).
2. Follow: subscribe with ``since`` = the saved cursor and apply each change to the rows in
   memory; rewrite the file atomically (temp file + rename), debounced, then save the cursor of
   the last change written. Heartbeats move the saved cursor along while nothing changes.
3. After a restart, load the file and resume from its cursor. On ``resync`` (the cursor is
   older than the server's retention), do a full sync again. On a network error, reconnect.

A cursor is saved only after the file holds every change up to it, so a crash at any point at
worst replays changes (harmless: each carries the position's full state and its version).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus, WebSocketException

from omnistock.feeds.google_local import AVAILABILITY, COLUMNS, HEADER

CURSOR_HEADER = "omnistock-cursor"
_CURSOR_SAVE_SECONDS = 5.0
Key = tuple[str, str]


class FollowError(RuntimeError):
    """Following cannot go on (bad key, bad URL, refused subscription): the user must act."""


class _Unavailable(RuntimeError):
    """The server answered 5xx: try again later."""


# Worth retrying: the network, the server restarting or briefly unavailable.
_RETRY = (OSError, WebSocketException, httpx.TransportError, TimeoutError, _Unavailable)


class FeedFollower:
    """Keeps ``out`` equal to the server's local-inventory feed (for one location or group)."""

    def __init__(
        self,
        url: str,
        key: str,
        out: Path,
        *,
        location: str | None = None,
        group: str | None = None,
        debounce: float = 0.5,
        echo: Callable[[str], None] = print,
    ) -> None:
        base = url.rstrip("/")
        if not base.startswith(("http://", "https://")):
            raise FollowError(f"--url must start with http:// or https://, not {url!r}")
        self.feed_url = f"{base}/v1/feeds/local-inventory"
        self.stream_url = "ws" + base.removeprefix("http") + "/v1/stream"
        self.headers = {"Authorization": f"Bearer {key}"}
        self.out = out
        self.cursor_path = out.with_name(out.name + ".cursor")
        self.filters: dict[str, str] = {}
        self.subscription: dict[str, Any] = {}
        if location is not None:
            self.filters, self.subscription = {"location": location}, {"locations": [location]}
        elif group is not None:
            self.filters, self.subscription = {"group": group}, {"groups": [group]}
        self.debounce = debounce
        self.echo = echo
        self.rows: dict[Key, tuple[int, str]] = {}
        self.versions: dict[Key, int] = {}
        self.cursor: str | None = None  # the cursor of everything applied to ``rows``
        self._saved_cursor: str | None = None
        self._saved_at = 0.0
        self._unwritten = 0  # changes applied but not yet in the file
        self.connected = False

    # -- main loop ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Sync, then follow forever; returns only by cancellation (after writing what it has)."""
        try:
            full = not self._load()
            if not full:
                self.echo(f"resuming {self.out} ({len(self.rows):,} rows) from its saved cursor")
            backoff = 0.5
            while True:
                self.connected = False
                try:
                    if full:
                        await self.full_sync()
                    full = await self.follow()
                    if full:
                        self.echo("cursor older than the server keeps: fetching the full feed")
                except _RETRY as exc:
                    if isinstance(exc, InvalidStatus) and exc.response.status_code in (401, 403):
                        code = exc.response.status_code
                        raise FollowError(f"stream refused the key (HTTP {code})") from None
                    self.flush()
                    backoff = 0.5 if self.connected else min(backoff * 2, 10.0)
                    self.echo(f"connection lost ({exc!r}); retrying in {backoff:g}s")
                    await asyncio.sleep(backoff)
        finally:
            self.flush()

    async def full_sync(self) -> None:
        """Download the whole feed, write it, and remember the cursor it was read at."""
        rows: dict[Key, tuple[int, str]] = {}
        async with (
            httpx.AsyncClient(headers=self.headers, timeout=60) as http,
            http.stream("GET", self.feed_url, params=self.filters) as resp,
        ):
            if resp.status_code != 200:
                await resp.aread()
                error = _Unavailable if resp.status_code >= 500 else FollowError
                raise error(f"feed: HTTP {resp.status_code}: {_detail(resp)}")
            token = resp.headers.get(CURSOR_HEADER)
            if not token:
                raise FollowError(f"feed: the server sent no {CURSOR_HEADER} header")
            lines = resp.aiter_lines()
            if (await anext(lines, "")).rstrip("\r\n") != HEADER.rstrip("\n"):
                raise FollowError("feed: unexpected header line")
            async for line in lines:
                if line:
                    store, sku, quantity, availability = line.split("\t")
                    rows[(store, sku)] = (int(quantity), availability)
        self.rows, self.versions, self.cursor = rows, {}, token
        self._write()
        self.echo(f"wrote {self.out}: full feed, {len(rows):,} rows")

    async def follow(self) -> bool:
        """Follow the stream from ``self.cursor``; True when the server asks for a resync."""
        async with connect(
            self.stream_url, additional_headers=self.headers, open_timeout=10, max_size=None
        ) as ws:
            op = {"op": "subscribe", "id": "feed", "since": self.cursor, **self.subscription}
            await ws.send(json.dumps(op))
            self.connected = True
            self.echo(f"following {self.stream_url}")
            return await self._receive(ws)

    async def _receive(self, ws: ClientConnection) -> bool:
        loop = asyncio.get_running_loop()
        due: float | None = None  # when pending changes must be written
        while True:
            wait = None if due is None else max(0.0, due - loop.time())
            try:
                raw = await asyncio.wait_for(ws.recv(), wait)
            except TimeoutError:
                self.flush()
                due = None
                continue
            msg = json.loads(raw)
            kind = msg.get("type")
            if kind == "change":
                self._apply(msg)
                self.cursor = msg["cursor"]
                if due is None:
                    due = loop.time() + self.debounce
            elif kind in ("heartbeat", "subscribed"):
                self.cursor = msg["cursor"]
                if not self._unwritten:
                    self._save_cursor(force=kind == "subscribed")
            elif kind == "resync":
                self.flush()
                return True
            elif kind == "error":
                raise FollowError(f"stream: {msg.get('detail')}")

    # -- state ----------------------------------------------------------------------------------

    def _apply(self, msg: dict[str, Any]) -> None:
        key: Key = (msg["location"], msg["sku"])
        if msg["version"] <= self.versions.get(key, 0):
            return  # a replayed duplicate
        self.versions[key] = msg["version"]
        self.rows[key] = (msg["available"], AVAILABILITY[msg["status"]])
        self._unwritten += 1

    def flush(self) -> None:
        """Write the file (and its cursor) if changes are waiting."""
        if self._unwritten:
            count, self._unwritten = self._unwritten, 0
            self._write()
            self.echo(f"wrote {self.out}: {count:,} change(s), {len(self.rows):,} rows")

    def _write(self) -> None:
        tmp = self.out.with_name(f".{self.out.name}.tmp")
        with tmp.open("w", encoding="utf-8", newline="") as f:
            f.write(HEADER)
            for (store, sku), (quantity, availability) in sorted(self.rows.items()):
                f.write(f"{store}\t{sku}\t{quantity}\t{availability}\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.out)
        self._unwritten = 0
        self._save_cursor(force=True)

    def _save_cursor(self, force: bool) -> None:
        if self.cursor is None or self.cursor == self._saved_cursor:
            return
        if not force and time.monotonic() - self._saved_at < _CURSOR_SAVE_SECONDS:
            return
        tmp = self.cursor_path.with_name(f".{self.cursor_path.name}.tmp")
        tmp.write_text(self.cursor + "\n", encoding="utf-8")
        os.replace(tmp, self.cursor_path)
        self._saved_cursor, self._saved_at = self.cursor, time.monotonic()

    def _load(self) -> bool:
        """Rows and cursor of a previous run, if both are there and readable."""
        try:
            token = self.cursor_path.read_text(encoding="utf-8").strip()
            lines = self.out.read_text(encoding="utf-8").splitlines()
        except OSError:
            return False
        if not token or not lines or lines[0].split("\t") != list(COLUMNS):
            return False
        rows: dict[Key, tuple[int, str]] = {}
        try:
            for line in lines[1:]:
                store, sku, quantity, availability = line.split("\t")
                rows[(store, sku)] = (int(quantity), availability)
        except ValueError:
            return False
        self.rows, self.cursor, self._saved_cursor = rows, token, token
        return True


def _detail(resp: httpx.Response) -> str:
    try:
        return str(resp.json().get("detail", resp.text))
    except ValueError:
        return resp.text[:200]


def follow_main(url: str, key: str, out: Path, **options: Any) -> int:
    """``omnistock feed follow``: run until SIGINT/SIGTERM (exit 0, having written what it has)
    or an error it cannot get past (exit 1)."""

    def echo(text: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {text}", flush=True)

    async def main() -> int:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        try:
            await FeedFollower(url, key, out, echo=echo, **options).run()
        except asyncio.CancelledError:
            echo("stopped")
        except FollowError as exc:
            print(f"omnistock feed follow: {exc}", file=sys.stderr)
            return 1
        return 0

    return asyncio.run(main())
