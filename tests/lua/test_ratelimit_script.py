"""ratelimit.lua (GCRA) on the real Valkey: exact decisions with a controlled clock, the Redis clock
path, and an exact count under concurrent callers."""

from __future__ import annotations

import asyncio

import redis.asyncio as aredis

from omnistock.domain.ratelimit import Decision, Policy
from omnistock.redis import keys
from omnistock.redis.multiplex import Multiplexer
from omnistock.redis.ratelimit import RateLimiter, _Lease
from omnistock.redis.scripts import Scripts

T0 = 1_764_000_000_123_456  # a 16-digit microsecond time, as the Redis clock gives


def limiter(hot: Multiplexer, scripts: Scripts) -> Hits:
    return Hits(RateLimiter(hot, scripts.library))


class Hits:
    """One request at a time through ratelimit.lua, at a given time."""

    def __init__(self, limiter: RateLimiter) -> None:
        self.limiter = limiter

    async def hit(self, key_id: str, policy: Policy, now_us: int | None = None) -> Decision:
        decision, taken = await self.limiter.take(key_id, policy, 1, now_us)
        assert taken == (1 if decision.allowed else 0)
        return decision


async def test_burst_then_steady_rate_exactly(
    hot: Multiplexer, scripts: Scripts, uid: str, redis: aredis.Redis
) -> None:
    rl, policy = limiter(hot, scripts), Policy(5, 1)  # one request per 200,000 us, 5 at once
    burst = [await rl.hit(uid, policy, T0) for _ in range(6)]
    assert burst[:5] == [Decision(True, 4 - n, (n + 1) * 200_000, 0) for n in range(5)]
    assert burst[5] == Decision(False, 0, 1_000_000, 200_000)  # refused: nothing counted
    assert await rl.hit(uid, policy, T0 + 199_999) == Decision(False, 0, 800_001, 1)
    assert await rl.hit(uid, policy, T0 + 200_000) == Decision(True, 0, 1_000_000, 0)
    # Steady state: one request per interval passes, a second one in the same interval does not.
    for step in range(2, 12):
        now = T0 + step * 200_000
        assert (await rl.hit(uid, policy, now)).allowed
        refused = await rl.hit(uid, policy, now + 199_999)
        assert not refused.allowed and refused.retry_us == 1
    # The key is stored exactly (no exponent form) and expires once the bucket is full again.
    raw = await redis.get(keys.rate_limit(uid))
    assert raw == str(T0 + 1_000_000 + 11 * 200_000).encode()
    assert 0 < await redis.pttl(keys.rate_limit(uid)) <= 1_001
    # After a full window of silence the whole burst is back.
    later = T0 + 1_000_000 + 11 * 200_000
    assert await rl.hit(uid, policy, later) == Decision(True, 4, 200_000, 0)


async def test_a_tighter_clock_never_owes_more_than_a_window(
    hot: Multiplexer, scripts: Scripts, uid: str
) -> None:
    # A key limited by a strict policy, then by a looser one: waits at most the new window.
    rl = limiter(hot, scripts)
    strict, loose = Policy(1, 3600), Policy(10, 1)
    assert (await rl.hit(uid, strict, T0)).allowed
    assert (await rl.hit(uid, strict, T0)) == Decision(False, 0, 3_600_000_000, 3_600_000_000)
    refused = await rl.hit(uid, loose, T0)
    assert refused == Decision(False, 0, 1_000_000, 100_000)
    assert await rl.hit(uid, loose, T0 + 100_000) == Decision(True, 0, 1_000_000, 0)


async def test_the_redis_clock_is_used_without_a_time_argument(
    hot: Multiplexer, scripts: Scripts, uid: str
) -> None:
    rl, policy = limiter(hot, scripts), Policy(3, 60)
    decisions = [await rl.hit(uid, policy) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    assert 19_000_000 < decisions[3].retry_us <= 20_000_000


async def test_concurrent_callers_get_exactly_the_quota(
    servers: object, scripts: Scripts, uid: str
) -> None:
    # 400 concurrent requests over 4 connections (as 4 instances would send them) against a
    # quota of 50 that refills once an hour: exactly 50 pass.
    url = servers.redis_url  # type: ignore[attr-defined]
    conns = [Multiplexer(url) for _ in range(4)]
    try:
        policy = Policy(50, 3600)
        limiters = [Hits(RateLimiter(c, scripts.library)) for c in conns]
        found = await asyncio.gather(*(limiters[n % 4].hit(uid, policy) for n in range(400)))
        assert sum(d.allowed for d in found) == 50
        assert sorted(d.remaining for d in found if d.allowed) == list(range(50))
    finally:
        for c in conns:
            await c.aclose()


async def test_the_library_is_loaded_again_when_the_server_lost_it(
    hot: Multiplexer, scripts: Scripts, redis: aredis.Redis, uid: str
) -> None:
    await redis.execute_command("FUNCTION", "DELETE", scripts.library.name)
    assert (await limiter(hot, scripts).hit(uid, Policy(1, 1), T0)).allowed


def test_the_key_carries_a_hash_tag_of_the_api_key() -> None:
    assert keys.rate_limit("key-0123abcd") == "os:rl:{key-0123abcd}"


async def test_taking_several_at_once_takes_what_is_there(
    hot: Multiplexer, scripts: Scripts, uid: str
) -> None:
    rl, policy = RateLimiter(hot, scripts.library), Policy(10, 1)  # 100,000 us each
    assert await rl.take(uid, policy, 4, T0) == (Decision(True, 6, 400_000, 0), 4)
    assert await rl.take(uid, policy, 4, T0) == (Decision(True, 2, 800_000, 0), 4)
    assert await rl.take(uid, policy, 4, T0) == (Decision(True, 0, 1_000_000, 0), 2)
    assert await rl.take(uid, policy, 4, T0) == (Decision(False, 0, 1_000_000, 100_000), 0)
    assert await rl.take(uid, policy, 4, T0 + 250_000) == (Decision(True, 0, 950_000, 0), 2)


async def test_a_busy_key_is_counted_down_locally_and_never_past_the_limit(
    servers: object, scripts: Scripts, uid: str
) -> None:
    # Two instances (limiters on connections of their own), 5,000 concurrent requests of one key
    # under 2000/1s (leases of 20): no more pass than Redis granted, and Redis granted no more
    # than the bucket held over the run.
    url = servers.redis_url  # type: ignore[attr-defined]
    conns = [Multiplexer(url) for _ in range(2)]
    try:
        policy = Policy(2000, 1)
        assert policy.lease == 20
        limiters = [RateLimiter(c, scripts.library) for c in conns]
        loop = asyncio.get_running_loop()
        start = loop.time()
        found = await asyncio.gather(*(limiters[n % 2].hit(uid, policy) for n in range(5000)))
        elapsed = loop.time() - start
        passed = sum(d.allowed for d in found)
        assert 2000 <= passed <= 2000 + 2000 * elapsed + 1, (passed, elapsed)
        refused = [d for d in found if not d.allowed]
        assert refused and all(1 <= d.retry_us <= 500 for d in refused)
        assert all(0 <= d.remaining < 2000 for d in found)
    finally:
        for c in conns:
            await c.aclose()


async def test_concurrent_requests_of_a_key_share_one_call(
    hot: Multiplexer, scripts: Scripts, uid: str
) -> None:
    class Counting:
        def __init__(self) -> None:
            self.calls = 0

        async def execute_command(self, *args: object) -> object:
            self.calls += 1
            return await hot.execute_command(*args)

    counting = Counting()
    rl = RateLimiter(counting, scripts.library)
    policy = Policy(10_000, 1)  # leases of 100
    found = await asyncio.gather(*(rl.hit(uid, policy) for _ in range(100)))
    assert all(d.allowed for d in found)
    # The first asks for itself; the second for itself, a lease of 2 and the 98 that waited;
    # once half of that was used, a third call took the next lease in the background.
    assert counting.calls == 3
    # (the bucket refills by one per 100 us meanwhile, so values may repeat)
    assert all(9_800 <= d.remaining <= 9_999 for d in found)
    await asyncio.gather(*rl._refills)
    # A busy key's requests keep passing locally: the next lease comes before this one runs out.
    for _ in range(150):
        assert rl.local(uid, policy) is not None
        await asyncio.gather(*rl._refills)  # (lets a refill's answer arrive)
    assert counting.calls <= 6


def test_a_lease_follows_what_its_instance_served() -> None:
    policy = Policy(10_000, 1)  # at most 100
    ok, refused = Decision(True, 5_000, 500_000, 0), Decision(False, 0, 1_000_000, 100)
    lease = _Lease(policy, ok, 10, 0.0)
    lease.left = 0  # ran out: twice as many
    assert lease.next_size(policy) == 20
    lease = _Lease(policy, ok, 80, 0.0)
    lease.left = 0
    assert lease.next_size(policy) == 100
    lease = _Lease(policy, ok, 10, 0.0)
    lease.left = 7  # served 3 before it expired: 4
    assert lease.next_size(policy) == 4
    assert _Lease(policy, refused, 0, 0.0).next_size(policy) == 1
    assert _Lease(Policy(5_000, 1), ok, 10, 0.0).next_size(policy) == 1  # another policy
    assert _Lease(Policy(100, 1), ok, 1, 0.0).next_size(Policy(100, 1)) == 1  # leases of 1


async def test_a_key_of_a_low_rate_is_counted_request_by_request(
    servers: object, scripts: Scripts, uid: str
) -> None:
    # Leases of 1: two instances, 400 concurrent requests, a quota of 50 per hour: exactly 50
    # pass, and each instance then refuses from memory without asking Redis again.
    url = servers.redis_url  # type: ignore[attr-defined]
    conns = [Multiplexer(url) for _ in range(2)]
    try:
        policy = Policy(50, 3600)
        assert policy.lease == 1
        limiters = [RateLimiter(c, scripts.library) for c in conns]
        found = await asyncio.gather(*(limiters[n % 2].hit(uid, policy) for n in range(400)))
        assert sum(d.allowed for d in found) == 50
        for limiter in limiters:
            assert not (await limiter.hit(uid, policy)).allowed  # asks Redis or remembers
            remembered = limiter.local(uid, policy)  # (right after: well within 100 ms)
            assert remembered is not None and not remembered.allowed
            assert 71_000_000 < remembered.retry_us <= 72_000_000  # one per 72 s comes back
    finally:
        for c in conns:
            await c.aclose()
