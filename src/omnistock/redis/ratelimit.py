"""The rate-limit adapter: ratelimit.lua on the pipelined connection, with a small local lease.

Each instance asks Redis for a key's requests; for a busy key it takes a few at once and counts
them down locally for up to ``LEASE_SECONDS``: about as many as it served in its last lease
(doubling while they run out), at most ``Policy.lease`` (1% of the quota). It remembers a refusal
until then too (or until the refusal's retry time). Requests taken from Redis are already counted
there, so the instances together never pass more than the policy allows; what an instance took
and did not use in time is lost to the key (in steady traffic about one request per lease).
Once half of a lease is used, the next is taken in the background, so a busy key's requests do
not wait for Redis. For a busy key one call is in flight at a time: concurrent requests of the key wait for its
answer, which takes enough for them as well. A key of a low rate (``Policy.lease`` 1) is asked
for request by request.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from redis.exceptions import ResponseError

from omnistock.domain.ratelimit import LEASE_SECONDS, Decision, Policy
from omnistock.redis import keys
from omnistock.redis.scripts import LIMITED, OK, Library

_PRUNE_AT = 4096  # leases kept before the expired ones are dropped


class _Lease:
    """What this instance took for one key: ``left`` requests (or a refusal) until ``until``."""

    __slots__ = ("at", "decision", "left", "policy", "refilling", "taken", "until")

    def __init__(self, policy: Policy, decision: Decision, taken: int, at: float) -> None:
        self.policy, self.decision, self.taken, self.at = policy, decision, taken, at
        self.left = taken - 1  # the request that asked used the first
        self.refilling = False
        hold = LEASE_SECONDS if decision.allowed else min(LEASE_SECONDS, decision.retry_us / 1e6)
        self.until = at + hold

    def next_size(self, policy: Policy) -> int:
        """How many to take next time: double when this lease ran out, else what it served
        plus one (so what an instance holds unused follows its traffic), within the policy's."""
        if self.policy != policy or not self.decision.allowed:
            return 1
        used = self.taken - self.left
        return min(policy.lease, 2 * self.taken if self.left <= 0 else used + 1)


class RateLimiter:
    """Counts requests per API key in Redis, so every instance shares one bucket per key.

    ``client`` is the process's multiplexer: the call is packed with whatever other requests
    send in the same event-loop turn (no extra write, no pool)."""

    def __init__(self, client: Any, library: Library) -> None:
        self.client = client
        self.library = library
        self.function = library.function("ratelimit")
        self._leases: dict[str, _Lease] = {}
        self._asking: dict[str, asyncio.Future[None]] = {}
        self._waiting: dict[str, int] = {}  # requests waiting for the call in flight, per key
        self._refills: set[asyncio.Task[tuple[Decision, int]]] = set()

    async def hit(self, key_id: str, policy: Policy) -> Decision:
        """Count one request of API key ``key_id`` under ``policy``."""
        if policy.lease == 1:
            # A key of a low rate: every request is asked for by itself, no waiting on another.
            decision = self.local(key_id, policy)
            if decision is not None:
                return decision
            decision, _ = await self.take(key_id, policy)
            if not decision.allowed:
                self._leases[key_id] = _Lease(policy, decision, 0, time.monotonic())
            return decision
        while True:
            decision = self.local(key_id, policy)
            if decision is not None:
                return decision
            asking = self._asking.get(key_id)
            if asking is None:
                return await self._ask(key_id, policy)
            self._waiting[key_id] = self._waiting.get(key_id, 0) + 1
            try:
                await asyncio.shield(asking)  # then look at what it brought
            finally:
                self._waiting[key_id] -= 1
                if not self._waiting[key_id]:
                    del self._waiting[key_id]

    def local(self, key_id: str, policy: Policy) -> Decision | None:
        """The decision this instance can make alone (from a lease or a remembered refusal),
        counting the request; None when Redis must be asked (:meth:`hit`)."""
        lease = self._leases.get(key_id)
        if lease is None:
            return None
        now = time.monotonic()
        if now >= lease.until or (lease.policy is not policy and lease.policy != policy):
            return None  # kept until replaced: the next lease is sized on what this one served
        taken = lease.decision
        elapsed = int((now - lease.at) * 1_000_000)
        reset = taken.reset_us - elapsed
        if reset < 0:
            reset = 0
        if not taken.allowed:
            return Decision(False, 0, reset, max(1, taken.retry_us - elapsed))
        if lease.left <= 0:
            return None
        lease.left -= 1
        if 2 * lease.left <= lease.taken and not lease.refilling and lease.taken > 1:
            self._refill(key_id, lease)
        return Decision(True, taken.remaining + lease.left, reset, 0)

    def _refill(self, key_id: str, lease: _Lease) -> None:
        """Half of a busy key's lease is used: take the next before it runs out, in the
        background, so that its requests never wait for Redis (twice as many: it is busy)."""
        lease.refilling = True
        size = min(lease.policy.lease, 2 * lease.taken)
        task = asyncio.get_running_loop().create_task(self.take(key_id, lease.policy, size))
        self._refills.add(task)
        task.add_done_callback(lambda done: self._refilled(key_id, lease, done))

    def _refilled(
        self, key_id: str, lease: _Lease, done: asyncio.Task[tuple[Decision, int]]
    ) -> None:
        self._refills.discard(done)
        lease.refilling = False
        if done.cancelled() or done.exception() is not None:
            return  # the next request that finds the lease empty asks (and fails open if it must)
        decision, taken = done.result()
        # Into the key's lease (a newer one if the requests ran out meanwhile and asked).
        current = self._leases.get(key_id)
        if not decision.allowed or current is None or current.policy != lease.policy:
            return  # refused: what is left is used up first
        if not current.decision.allowed:
            return  # (cannot happen while this one was refilling; nothing is held then)
        now = time.monotonic()
        current.decision, current.at, current.until = decision, now, now + LEASE_SECONDS
        current.left += taken
        current.taken = current.left

    async def _ask(self, key_id: str, policy: Policy) -> Decision:
        asking = asyncio.get_running_loop().create_future()
        self._asking[key_id] = asking
        try:
            # Enough for the requests already waiting too: they are served as soon as it answers.
            prior = self._leases.get(key_id)
            size = 1 if prior is None else prior.next_size(policy)
            want = size + self._waiting.get(key_id, 0)
            decision, taken = await self.take(key_id, policy, want)
        except Exception as exc:
            # The requests waiting for this answer fail alike (not one after another).
            del self._asking[key_id]
            asking.set_exception(exc)
            asking.exception()  # retrieved: nobody may be waiting
            raise
        except BaseException:  # this request was cancelled: a waiting one asks instead
            del self._asking[key_id]
            asking.set_result(None)
            raise
        del self._asking[key_id]
        asking.set_result(None)
        if len(self._leases) >= _PRUNE_AT:
            now = time.monotonic()
            self._leases = {k: v for k, v in self._leases.items() if v.until > now}
        self._leases[key_id] = _Lease(policy, decision, taken, time.monotonic())
        if decision.allowed:
            # This request is the first of those taken: the rest are left to count down.
            return decision._replace(remaining=decision.remaining + taken - 1)
        return decision

    async def take(
        self, key_id: str, policy: Policy, count: int = 1, now_us: int | None = None
    ) -> tuple[Decision, int]:
        """Take up to ``count`` requests of ``key_id`` from Redis (``now_us``: tests' clock);
        the decision for the first of them and how many were taken (0 when refused)."""
        command = (
            "FCALL",
            self.function,
            1,
            keys.rate_limit(key_id),
            policy.interval_us,
            policy.burst_us,
            "" if now_us is None else now_us,
            count,
        )
        try:
            raw = await self.client.execute_command(*command)
        except ResponseError as exc:
            if "function not found" not in str(exc).lower():
                raise
            await self.library.load(self.client)
            raw = await self.client.execute_command(*command)
        code, taken = int(raw[0]), int(raw[1])
        if code == OK:
            return Decision(True, int(raw[2]), int(raw[3]), 0), taken
        if code == LIMITED:
            return Decision(False, 0, int(raw[3]), int(raw[4])), 0
        raise ResponseError(f"ratelimit.lua answered an unknown code {code}")
