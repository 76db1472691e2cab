"""What the data commands of the CLI do (import, rebuild, reconcile, demo), against the stores
named by the settings, with or without servers running."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

from omnistock.postgres import catalog
from omnistock.redis import streams
from omnistock.services import open_stores
from omnistock.settings import Settings
from omnistock.sync.persister import Persister
from omnistock.sync.rebuild import Restored, rebuild_locked
from omnistock.sync.reconcile import Drift, Reconciler
from omnistock.usecases.imports import (
    Format,
    ImportLimits,
    ImportResult,
    backlog_pacer,
    import_stream,
)


async def _file_chunks(path: Path, size: int, progress: _Progress) -> AsyncIterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(size):
            progress.read += len(chunk)
            yield chunk


class _Progress:
    """A one-line progress bar on stderr."""

    def __init__(self, total: int) -> None:
        self.total = max(1, total)
        self.read = 0
        self.started = time.perf_counter()
        self._last = 0.0

    def __call__(self, rows: int, final: bool = False) -> None:
        now = time.perf_counter()
        if not final and now - self._last < 0.2:
            return
        self._last = now
        rate = rows / max(now - self.started, 1e-9)
        done = self.read / self.total
        bar = "#" * int(done * 30)
        print(
            f"\r[{bar:<30}] {done:4.0%}  {rows:>10,} rows  {rate:>9,.0f} rows/s",
            end="",
            file=sys.stderr,
        )
        if final:
            print(file=sys.stderr)


async def import_file(
    settings: Settings, path: Path, size: int, fmt: Format, actor: str
) -> tuple[ImportResult, float]:
    """Import ``path`` straight into the stores. A persister runs alongside (and drains at the
    end), so the events reach Postgres even when no server is running."""
    async with open_stores(settings) as stores:
        known = {loc.id for loc in await catalog.all_locations(stores.db)}
        persister = Persister(
            stores.redis, stores.db, settings.partitions, batch=settings.persister_batch
        )
        persisting = asyncio.create_task(persister.run(block_ms=200))
        progress = _Progress(size)
        # No server may be running: our own persister keeps the backlog below half the limit.
        pace = backlog_pacer(
            lambda: streams.backlog(stores.redis, settings.partitions),
            settings.backlog_limit // 2,
        )

        started = time.perf_counter()
        try:
            result = await import_stream(
                _file_chunks(path, 1 << 20, progress),
                fmt,
                stores.store,
                actor,
                allowed=lambda loc: None if loc in known else f"unknown location {loc!r}",
                pace=pace,
                progress=progress,
                limits=ImportLimits.from_settings(settings),
            )
            progress(result.rows, final=True)
            elapsed = time.perf_counter() - started
        finally:
            persister.stop()
            await persisting
        await persister.drain()
        return result, elapsed


async def rebuild(settings: Settings) -> Restored:
    async with open_stores(settings, ready=False) as stores:
        return await rebuild_locked(stores.redis, stores.db, stores.scripts, settings.partitions)


async def reconcile(settings: Settings, fix: bool) -> list[Drift]:
    async with open_stores(settings) as stores:
        return await Reconciler(stores.redis, stores.db, settings.partitions).run(fix=fix)


async def demo(settings: Settings) -> tuple[str, int]:
    from omnistock.cli.demo import load_demo

    async with open_stores(settings) as stores:
        return await load_demo(stores.db, stores.store)
