"""The fan-out reads the streams only while its process has a subscription: idle it reads
nothing, and the first subscription restarts it from the streams' ends before its ``subscribed``
names a cursor, so a change made just before or while subscribing is seen (via ``since`` or live)
and none is lost, however many first subscriptions race the writes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import redis.asyncio as aredis

from omnistock.domain.ids import partition_of
from omnistock.redis import keys
from omnistock.stream import cursor
from omnistock.stream.cursor import parse_id
from omnistock.stream.fanout import Fanout
from tests.conftest import Servers
from tests.e2e.conftest import AppServer, app_settings, put_location
from tests.e2e.stream.client import Message, StreamClient, fanout_of, set_on_hand, stream
from tests.events import event_fields


@pytest.fixture(scope="module")
async def idle_app(servers: Servers, app: AppServer) -> AsyncIterator[AppServer]:
    """An instance of its own, so no other test's subscription keeps its reader active."""
    server = AppServer(app_settings(servers), worker=False)
    await server.start()
    yield server
    await server.stop()


async def until(check: Callable[[], bool], wait: float) -> None:
    async with asyncio.timeout(wait):
        while not check():  # noqa: ASYNC110 (the server's state, not an event of ours)
            await asyncio.sleep(0.02)


async def until_idle(fanout: Fanout) -> None:
    # The last subscription gone, the reader stops after its current read (it blocks up to 5 s).
    await until(lambda: not fanout.activity.active, 20)


async def reader_gauge(app: AppServer) -> float:
    async with httpx.AsyncClient(base_url=app.url, timeout=10) as client:
        text = (await client.get("/metrics")).text
    line = next(x for x in text.splitlines() if x.startswith("omnistock_stream_reader_active "))
    return float(line.split()[1])


async def positions_after(
    redis: aredis.Redis, stream_key: str, location: str, start: int
) -> set[int]:
    """Stream positions of ``location``'s position changes after ``start``."""
    found: set[int] = set()
    for entry, fields in await redis.xrange(stream_key, min="-", max="+"):
        pos = parse_id(entry)
        if pos > start and event_fields(fields).get("loc") == location:
            found.add(pos)
    return found


async def test_idle_reader_reads_nothing_until_a_subscription(
    idle_app: AppServer, admin: httpx.AsyncClient, app_redis: aredis.Redis, uid: str
) -> None:
    fanout = fanout_of(idle_app)
    await put_location(admin, uid)
    await until_idle(fanout)
    before, starts = list(fanout.positions), fanout.activity.starts
    for n in range(20):
        await set_on_hand(admin, uid, "idle", n + 1)
    await asyncio.sleep(0.5)
    assert fanout.positions == before  # nothing read while nobody listens here
    assert await reader_gauge(idle_app) == 0
    p = partition_of(uid, idle_app.settings.partitions)
    last = max(await positions_after(app_redis, keys.stream(p), uid, 0))
    async with stream(idle_app) as ws:
        sub = await ws.subscribe("s", locations=[uid])
        assert fanout.activity.starts == starts + 1
        # The cursor names the streams' ends as they were when it started, not the old positions.
        assert cursor.decode(sub["cursor"], idle_app.settings.partitions)[p] >= last
        assert await reader_gauge(idle_app) == 1
        pos = await set_on_hand(admin, uid, "idle", 100)
        msg = await ws.next()
        assert (msg["type"], msg["sku"], msg["version"]) == ("change", "idle", pos["version"])
    await until_idle(fanout)
    assert await reader_gauge(idle_app) == 0


async def _follow(
    app: AppServer, uid: str, since: str | None, go: asyncio.Event, done: asyncio.Event
) -> tuple[str, list[Message]]:
    """Subscribe once ``go`` is set; return the start cursor and every change up to ``done``'s
    marker (sku "end")."""
    async with stream(app) as ws:
        client: StreamClient = ws
        await go.wait()
        fields: dict[str, Any] = {"locations": [uid]}
        if since is not None:
            fields["since"] = since
        sub = await client.subscribe("s", **fields)
        changes = await client.until(lambda m: m["type"] == "change" and m["sku"] == "end", 60)
        await done.wait()
        return since or sub["cursor"], [m for m in changes if m["type"] == "change"]


async def test_first_subscriptions_racing_writes_lose_nothing(
    idle_app: AppServer, admin: httpx.AsyncClient, app_redis: aredis.Redis, uid: str
) -> None:
    fanout = fanout_of(idle_app)
    partitions = idle_app.settings.partitions
    await put_location(admin, uid)
    p = partition_of(uid, partitions)
    for cycle in range(2):  # idle -> 16 first subscriptions at once -> idle, twice
        await until_idle(fanout)
        async with httpx.AsyncClient(
            base_url=idle_app.url, headers=admin.headers, timeout=30
        ) as own:
            feed = await own.get("/v1/feeds/local-inventory", params={"location": uid})
        assert feed.status_code == 200, feed.text
        since = feed.headers["omnistock-cursor"]
        go, done, stop = asyncio.Event(), asyncio.Event(), asyncio.Event()
        followers = [
            asyncio.create_task(_follow(idle_app, uid, since if i % 2 else None, go, done))
            for i in range(16)
        ]

        async def write(stop: asyncio.Event = stop, base: int = cycle * 10_000) -> None:
            n = 0
            while not stop.is_set():
                n += 1
                await set_on_hand(admin, uid, f"w{n % 5}", base + n)

        writer = asyncio.create_task(write())
        await asyncio.sleep(0.2)  # changes before the subscriptions: since must replay them
        go.set()
        await until(lambda: sum(len(c.subs) for c in fanout.connections) == 16, 30)
        await asyncio.sleep(0.3)  # and changes after them: live
        stop.set()
        await writer
        await set_on_hand(admin, uid, "end", cycle + 1)
        done.set()
        results = await asyncio.gather(*followers)
        for start, changes in results:
            first = cursor.decode(start, partitions)[p]
            expected = await positions_after(app_redis, keys.stream(p), uid, first)
            seen = {cursor.decode(m["cursor"], partitions)[p] for m in changes}
            assert seen == expected, (start, sorted(expected - seen), sorted(seen - expected))
        assert fanout.activity.starts >= cycle + 1
