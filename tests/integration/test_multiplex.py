"""The pipelined request connection on a real Valkey: replies reach their own callers under
concurrency, errors keep their redis-py types, and a lost connection fails what was in flight
and is replaced on the next command."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

from omnistock.redis.multiplex import NAME, Multiplexer, pack
from tests.conftest import Servers


async def _hot_connection_ids(redis: aredis.Redis) -> list[str]:
    clients = await redis.client_list()
    return [c["id"] for c in clients if c["name"] == NAME]


async def _wait_for_command(redis: aredis.Redis, command: str) -> str:
    """The id of the hot connection once Valkey sees it running ``command``."""
    for _ in range(500):
        for c in await redis.client_list():
            if c["name"] == NAME and c["cmd"] == command:
                return str(c["id"])
        await asyncio.sleep(0.01)
    raise AssertionError(f"no {NAME} connection running {command}")


async def test_concurrent_callers_get_their_own_replies(hot: Multiplexer, uid: str) -> None:
    n = 2_000
    await asyncio.gather(*(hot.execute_command("SET", f"{uid}:{i}", i) for i in range(n)))
    values = await asyncio.gather(*(hot.execute_command("GET", f"{uid}:{i}") for i in range(n)))
    assert values == [str(i).encode() for i in range(n)]
    counts = await asyncio.gather(*(hot.execute_command("INCR", f"{uid}:hot") for _ in range(n)))
    assert sorted(counts) == list(range(1, n + 1))
    assert await hot.execute_command("GET", f"{uid}:hot") == str(n).encode()


async def test_execute_many_answers_in_order(hot: Multiplexer, uid: str) -> None:
    await hot.execute_command("HSET", f"{uid}:h", "a", 1, "b", 2)
    replies = await hot.execute_many(
        [("HMGET", f"{uid}:h", "a", "b", "c"), ("HGET", f"{uid}:h", "b"), ("EXISTS", f"{uid}:x")]
    )
    assert replies == [[b"1", b"2", None], b"2", 0]
    assert await hot.execute_many([]) == []


async def test_a_batch_with_an_error_fails_whole_and_keeps_the_order(
    hot: Multiplexer, uid: str
) -> None:
    """Batches interleaved with single commands from other callers each get their own replies;
    an error reply inside a batch fails that batch only, after every reply of it has arrived."""
    await hot.execute_command("SET", f"{uid}:s", "x")
    n = 300
    batches = [
        hot.execute_many([("SET", f"{uid}:b{i}:{j}", j) for j in range(5)] + [("GET", f"{uid}:s")])
        for i in range(n)
    ]
    singles = [hot.execute_command("INCR", f"{uid}:n") for _ in range(n)]
    failing = hot.execute_many(
        [("GET", f"{uid}:s"), ("HGET", f"{uid}:s", "f"), ("GET", f"{uid}:s")]
    )
    results = await asyncio.gather(*batches, *singles, failing, return_exceptions=True)
    assert results[:n] == [[b"OK"] * 5 + [b"x"]] * n
    assert sorted(results[n : 2 * n]) == list(range(1, n + 1))  # type: ignore[type-var]
    assert isinstance(results[-1], ResponseError) and "WRONGTYPE" in str(results[-1])
    assert await hot.execute_command("GET", f"{uid}:s") == b"x"


async def test_errors_keep_their_types_and_the_connection(hot: Multiplexer, uid: str) -> None:
    with pytest.raises(NoScriptError):
        await hot.execute_command("EVALSHA", "0" * 40, 0)
    await hot.execute_command("SET", f"{uid}:s", "x")
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await hot.execute_command("HGET", f"{uid}:s", "f")
    assert await hot.execute_command("GET", f"{uid}:s") == b"x"


async def test_a_cancelled_caller_does_not_shift_replies(
    hot: Multiplexer, redis: aredis.Redis, uid: str
) -> None:
    await hot.execute_command("SET", f"{uid}:after", "mine")
    blocked = asyncio.create_task(hot.execute_command("BLPOP", f"{uid}:list", 10))
    await _wait_for_command(redis, "blpop")
    after = asyncio.create_task(hot.execute_command("GET", f"{uid}:after"))
    await asyncio.sleep(0)
    blocked.cancel()
    await redis.lpush(f"{uid}:list", "popped")  # BLPOP's reply now arrives for nobody
    assert await after == b"mine"
    assert blocked.cancelled()
    assert await redis.llen(f"{uid}:list") == 0


async def test_lost_connection_fails_in_flight_and_reconnects(
    servers: Servers, redis: aredis.Redis, uid: str
) -> None:
    hot = Multiplexer(servers.redis_url)
    try:
        blocked = asyncio.create_task(hot.execute_command("BLPOP", f"{uid}:list", 10))
        killed = await _wait_for_command(redis, "blpop")
        await redis.execute_command("CLIENT", "KILL", "ID", killed)
        with pytest.raises(RedisConnectionError):
            await blocked
        assert await hot.execute_command("PING") == b"PONG"
        now = await _hot_connection_ids(redis)
        assert killed not in now
    finally:
        await hot.aclose()


async def test_url_database_is_selected(servers: Servers, uid: str) -> None:
    url = servers.redis_url.rsplit("/", 1)[0] + "/3"
    hot = Multiplexer(url)
    other = aredis.Redis.from_url(url)
    try:
        await hot.execute_command("SET", f"{uid}:db", "three")
        assert await other.get(f"{uid}:db") == b"three"
        assert await hot.execute_command("GET", f"{uid}:db") == b"three"
    finally:
        await other.delete(f"{uid}:db")
        await other.aclose()
        await hot.aclose()


async def test_packed_batch_answers_like_execute_many(hot: Multiplexer, uid: str) -> None:
    """``execute_packed`` (the sourcing read's hand-packed HMGETs, non-ASCII keys included)
    returns exactly what ``execute_many`` returns for the same commands, interleaved with
    concurrent single commands."""
    fields = ("oh", "r", "ss", "u")
    keys = [f"{uid}:pos:{n}/é{n}" for n in range(300)]
    for n, key in enumerate(keys[::3]):
        await hot.execute_command("HSET", key, "oh", n, "r", 1)
    head, tail = pack("HMGET", *fields)
    payload = b"".join(head + b"$%d\r\n%b\r\n" % (len(k.encode()), k.encode()) + tail for k in keys)
    packed, singles, many = await asyncio.gather(
        hot.execute_packed(payload, len(keys)),
        asyncio.gather(*(hot.execute_command("HGET", k, "oh") for k in keys[:50])),
        hot.execute_many([("HMGET", k, *fields) for k in keys]),
    )
    assert packed == many
    assert packed[0] == [b"0", b"1", None, None] and packed[1] == [None] * 4
    assert singles == [row[0] for row in many[:50]]
    assert await hot.execute_packed(b"", 0) == []
