"""The rate-limit adapter: one FCALL of ratelimit.lua per request, on the pipelined connection."""

from __future__ import annotations

from typing import Any, NamedTuple

from redis.exceptions import ResponseError

from omnistock.domain.ratelimit import Policy
from omnistock.redis import keys
from omnistock.redis.scripts import LIMITED, OK, Library


class Decision(NamedTuple):
    """What the limiter said: whether the request passes, how many more would pass now, and
    microseconds until the bucket is full again and (when refused) until one would pass."""

    allowed: bool
    remaining: int
    reset_us: int
    retry_us: int


class RateLimiter:
    """Counts requests per API key in Redis, so every instance shares one bucket per key.

    ``client`` is the process's multiplexer: the call is packed with whatever other requests
    send in the same event-loop turn (no extra write, no pool)."""

    def __init__(self, client: Any, library: Library) -> None:
        self.client = client
        self.library = library
        self.function = library.function("ratelimit")

    async def hit(self, key_id: str, policy: Policy, now_us: int | None = None) -> Decision:
        """Count one request of API key ``key_id`` under ``policy`` (``now_us``: tests' clock)."""
        command = (
            "FCALL",
            self.function,
            1,
            keys.rate_limit(key_id),
            policy.interval_us,
            policy.burst_us,
            "" if now_us is None else now_us,
        )
        try:
            raw = await self.client.execute_command(*command)
        except ResponseError as exc:
            if "function not found" not in str(exc).lower():
                raise
            await self.library.load(self.client)
            raw = await self.client.execute_command(*command)
        code = int(raw[0])
        if code == OK:
            return Decision(True, int(raw[1]), int(raw[2]), 0)
        if code == LIMITED:
            return Decision(False, 0, int(raw[2]), int(raw[3]))
        raise ResponseError(f"ratelimit.lua answered an unknown code {code}")
