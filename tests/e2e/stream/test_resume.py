"""Resuming the stream with cursors: nothing missed, no gap into the live flow, resync when the
retained stream no longer reaches back to the cursor, and cursors that work on any instance."""

from __future__ import annotations

import asyncio

import httpx
import redis.asyncio as aredis

from omnistock.domain.ids import partition_of
from omnistock.redis import keys
from omnistock.stream import cursor
from tests.e2e.conftest import AppServer, put_location
from tests.e2e.stream.client import Message, entry_id, set_on_hand, stream, wait_persisted


def seen_all(expected: set[tuple[str, int]]) -> tuple[set[tuple[str, int]], object]:
    seen: set[tuple[str, int]] = set()

    def done(msg: Message) -> bool:
        if msg["type"] == "change":
            seen.add((msg["sku"], msg["version"]))
        return expected <= seen

    return seen, done


async def test_reconnect_with_last_cursor_sees_every_change(
    app: AppServer, admin: httpx.AsyncClient, uid: str
) -> None:
    await put_location(admin, uid)
    async with stream(app) as ws:
        await ws.subscribe("s", locations=[uid])
        await set_on_hand(admin, uid, "first", 1)
        last = (await ws.next())["cursor"]
    expected: set[tuple[str, int]] = set()
    for n in range(40):  # 40 changes, several to each of 7 positions
        pos = await set_on_hand(admin, uid, f"k{n % 7}", n + 10)
        expected.add((pos["sku"], pos["version"]))
    async with stream(app) as ws:
        await ws.subscribe("s", locations=[uid], since=last)
        seen, done = seen_all(expected)
        got = await ws.until(done)  # type: ignore[arg-type]
        assert seen == expected  # every change, none from before the cursor
        assert len(got) == len(expected)
        live = await set_on_hand(admin, uid, "live", 1)
        assert (await ws.next())["version"] == live["version"]


async def test_resume_joins_the_live_flow_without_a_gap(
    app: AppServer, admin: httpx.AsyncClient, uid: str
) -> None:
    """Changes keep coming while the subscription replays from its cursor and switches to the
    live flow: each of them arrives (each to its own position, so none is conflated)."""
    await put_location(admin, uid)
    async with stream(app) as ws:
        start = (await ws.subscribe("s", locations=[uid]))["cursor"]
    expected: set[tuple[str, int]] = set()

    async def write(count: int) -> None:
        for n in range(count):
            pos = await set_on_hand(admin, uid, f"{len(expected)}-{n}", n + 1)
            expected.add((pos["sku"], pos["version"]))

    await write(150)  # a backlog to replay
    writer = asyncio.create_task(write(300))  # and more while it does
    async with stream(app) as ws:
        await ws.subscribe("s", locations=[uid], since=start)
        assert not writer.done()
        await writer
        seen, done = seen_all(expected)
        await ws.until(done, wait=30)  # type: ignore[arg-type]
    assert len(expected) == 450 and seen == expected


async def test_cursor_older_than_retention_gets_resync(
    app: AppServer, admin: httpx.AsyncClient, app_redis: aredis.Redis, uid: str
) -> None:
    await put_location(admin, uid)
    stream_key = keys.stream(partition_of(uid, 64))
    async with stream(app) as ws:
        await ws.subscribe("s", locations=[uid])
        await set_on_hand(admin, uid, "a", 1)
        old = (await ws.next())["cursor"]
    await set_on_hand(admin, uid, "a", 2)
    kept = await set_on_hand(admin, uid, "a", 3)
    # What the trimmer does once retention has passed: drop persisted entries below a point.
    await wait_persisted(app_redis, stream_key)
    minid = await entry_id(app_redis, stream_key, uid, "a", kept["version"])
    await app_redis.xtrim(stream_key, minid=minid, approximate=False)
    async with stream(app) as ws:
        await ws.subscribe("s", locations=[uid], since=old)
        assert await ws.next() == {"type": "resync", "sub": "s"}
        # After a resync the subscription follows live changes.
        pos = await set_on_hand(admin, uid, "a", 4)
        msg = await ws.next()
        assert (msg["sku"], msg["version"]) == ("a", pos["version"])
        fresh = msg["cursor"]
    async with stream(app) as ws:  # a cursor from after the trim resumes normally
        await ws.subscribe("s", locations=[uid], since=fresh)
        await set_on_hand(admin, uid, "a", 5)
        assert (await ws.next())["on_hand"] == 5


async def test_cursor_before_a_rebuild_gets_resync(
    app: AppServer, admin: httpx.AsyncClient, app_redis: aredis.Redis, uid: str
) -> None:
    """A rebuild marks what Redis no longer holds as deleted (XSETID MAXDELETEDID)."""
    await put_location(admin, uid)
    stream_key = keys.stream(partition_of(uid, 64))
    async with stream(app) as ws:
        await ws.subscribe("s", locations=[uid])
        await set_on_hand(admin, uid, "a", 1)
        old = (await ws.next())["cursor"]
    await set_on_hand(admin, uid, "a", 2)
    last = (await app_redis.xinfo_stream(stream_key))["last-generated-id"]
    await app_redis.execute_command("XSETID", stream_key, last, "MAXDELETEDID", last)
    async with stream(app) as ws:
        await ws.subscribe("s", locations=[uid], since=old)
        assert await ws.next() == {"type": "resync", "sub": "s"}


async def test_cursor_from_one_instance_resumes_on_another(
    app: AppServer, other_app: AppServer, admin: httpx.AsyncClient, uid: str
) -> None:
    await put_location(admin, uid)
    async with stream(other_app) as ws:
        await ws.subscribe("s", locations=[uid])
        await set_on_hand(admin, uid, "a", 1)  # written through the first instance
        msg = await ws.next()
        assert msg["on_hand"] == 1
    expected = {(p["sku"], p["version"]) for p in [await set_on_hand(admin, uid, "a", 2)]}
    async with stream(app) as ws:
        await ws.subscribe("s", locations=[uid], since=msg["cursor"])
        await ws.until(seen_all(expected)[1])  # type: ignore[arg-type]


async def test_heartbeat_cursor_resumes(app: AppServer, admin: httpx.AsyncClient, uid: str) -> None:
    """The cursor of ``subscribed`` (like a heartbeat's) is a place to resume from."""
    await put_location(admin, uid)
    async with stream(app) as ws:
        subscribed = await ws.subscribe("s", locations=[uid])
    assert len(cursor.decode(subscribed["cursor"], 64)) == 64
    pos = await set_on_hand(admin, uid, "a", 9)
    async with stream(app) as ws:
        await ws.subscribe("s", locations=[uid], since=subscribed["cursor"])
        msg = await ws.next()
        assert (msg["sku"], msg["version"]) == ("a", pos["version"])


async def test_stream_rebuilt_past_the_reader_resyncs_live_clients(
    app: AppServer, admin: httpx.AsyncClient, app_redis: aredis.Redis, uid: str
) -> None:
    """A rebuild can mark as gone ids the reader never saw (what Redis lost): live subscribers
    are told to resync, and the reader moves past the gap so fresh cursors resume normally."""
    await put_location(admin, uid)
    stream_key = keys.stream(partition_of(uid, 64))
    async with stream(app) as ws:
        await ws.subscribe("live", locations=[uid])
        last = (await app_redis.xinfo_stream(stream_key))["last-generated-id"]
        mark = f"{int(last.split(b'-')[0]) + 20}-0"
        await app_redis.execute_command("XSETID", stream_key, mark, "MAXDELETEDID", mark)
        assert await ws.next(wait=10) == {"type": "resync", "sub": "live"}
        pos = await set_on_hand(admin, uid, "a", 1)
        msg = await ws.next()
        assert msg["version"] == pos["version"]
    async with stream(app) as ws:
        await ws.subscribe("again", locations=[uid], since=msg["cursor"])
        await set_on_hand(admin, uid, "a", 2)
        assert (await ws.next())["on_hand"] == 2  # resumed, no resync
