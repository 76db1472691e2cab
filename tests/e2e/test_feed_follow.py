"""``omnistock feed follow`` as a user runs it (a real process): the file equals the feed after
bursts of changes, after a restart, and after a resync."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import redis.asyncio as aredis

from omnistock.domain.ids import partition_of
from omnistock.redis import keys
from tests.e2e.conftest import AppServer, put_location, stock
from tests.e2e.stream.client import entry_id, wait_persisted


class Follower:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for line in self.proc.stdout:
            self.lines.append(line.decode().rstrip())

    def said(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    async def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(self.proc.wait(), 10)
        await self._reader
        return code


@contextlib.asynccontextmanager
async def follower(app: AppServer, key: str, out: Path, group: str) -> AsyncIterator[Follower]:
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "omnistock", "feed", "follow"),
        *("--url", app.url, "--key", key, "--out", str(out), "--group", group),
        *("--debounce", "0.1"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    running = Follower(proc)
    try:
        yield running
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def lines_of(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


async def wait_equal(admin: httpx.AsyncClient, group: str, out: Path, run: Follower) -> None:
    """Until the file holds exactly the feed's rows (the follower sorts them; the feed does not)."""
    feed: list[str] = []
    try:
        async with asyncio.timeout(15):
            while True:
                resp = await admin.get("/v1/feeds/local-inventory", params={"group": group})
                feed = resp.text.splitlines()
                mine = lines_of(out)
                if mine[:1] == feed[:1] and mine[1:] == sorted(feed[1:]):
                    return
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(f"file never matched the feed; follower said: {run.lines}") from None


async def changes(admin: httpx.AsyncClient, locs: list[str], rounds: int) -> None:
    """A burst: deltas to existing and new skus, counts, a reservation."""
    for n in range(rounds):
        items = [
            {
                "sku": f"k{(n * 7 + i) % 40}",
                "location": locs[i % len(locs)],
                "delta": d,
                "reason": r,
            }
            for i, (d, r) in enumerate([(5, "receipt"), (-1, "sale"), (2, "return")] * 10)
        ]
        resp = await admin.post("/v1/adjustments", json={"adjustments": items})
        assert resp.status_code == 200, resp.text
    put = await admin.put(f"/v1/stock/{locs[0]}/k1", json={"on_hand": 1})
    assert put.status_code == 200
    held = await admin.post(
        "/v1/reservations",
        json={"location": locs[0], "lines": [{"sku": "k0", "qty": 1}]},
    )
    assert held.status_code == 201


async def test_feed_follow(
    app: AppServer, admin: httpx.AsyncClient, app_redis: aredis.Redis, uid: str, tmp_path: Path
) -> None:
    group = f"{uid}-g"
    locs = [f"{uid}-a", f"{uid}-b", f"{uid}-c"]
    for loc in locs:
        await put_location(admin, loc, groups=[group])
        await stock(admin, loc, k0=3, k1=1)
    created = await admin.post("/v1/keys", json={"name": "feed", "role": "feed"})
    key = created.json()["key"]
    out = tmp_path / "inventory.tsv"

    async with follower(app, key, out, group) as run:
        await wait_equal(admin, group, out, run)
        assert run.said("full feed")
        await changes(admin, locs, rounds=20)
        await wait_equal(admin, group, out, run)
        assert await run.stop() == 0
        assert run.said("stopped")
    assert lines_of(tmp_path / "inventory.tsv.cursor")

    await changes(admin, locs, rounds=5)  # while nobody follows
    async with follower(app, key, out, group) as run:
        await wait_equal(admin, group, out, run)
        assert run.said("resuming") and not run.said("full feed"), run.lines
        assert await run.stop() == 0

    # Retention drops entries after the saved cursor: the follower starts over from the feed.
    stream_key = keys.stream(partition_of(locs[0], 64))
    await stock(admin, locs[0], k0=1)
    await stock(admin, locs[0], k0=1)
    pos = (await admin.get(f"/v1/stock/{locs[0]}/k0")).json()
    await wait_persisted(app_redis, stream_key)
    await app_redis.xtrim(
        stream_key,
        minid=await entry_id(app_redis, stream_key, locs[0], "k0", pos["version"]),
        approximate=False,
    )
    async with follower(app, key, out, group) as run:
        await wait_equal(admin, group, out, run)
        assert run.said("fetching the full feed")
        assert await run.stop() == 0


async def test_feed_follow_refuses_a_bad_key(app: AppServer, tmp_path: Path) -> None:
    async with follower(app, "not-a-key", tmp_path / "x.tsv", "g") as run:
        assert await asyncio.wait_for(run.proc.wait(), 15) == 1
        await run._reader
    assert run.said("HTTP 401")
    assert not lines_of(tmp_path / "x.tsv")
