"""Rate limits: the per-key limiter shared by every instance, failing open when Redis is away."""

from __future__ import annotations

import logging
import time

from redis.exceptions import RedisError

from omnistock.domain.ratelimit import Decision, Policy
from omnistock.domain.roles import Principal
from omnistock.metrics import Metrics
from omnistock.redis.ratelimit import RateLimiter

log = logging.getLogger("omnistock.ratelimit")

_WARN_EVERY = 10.0  # seconds between log lines while the limiter cannot reach Redis


class RateLimits:
    """Decides whether a caller's request passes its role's policy (API.md "Rate limits")."""

    def __init__(self, limiter: RateLimiter, metrics: Metrics) -> None:
        self._limiter = limiter
        self._metrics = metrics
        self._last_warning = 0.0

    def local(self, who: Principal, policy: Policy) -> Decision | None:
        """The decision this instance can make alone (a busy key's lease), or None: ask Redis."""
        return self._limiter.local(who.id, policy)

    async def ask(self, who: Principal, policy: Policy) -> Decision | None:
        """Redis's decision; None when Redis does not answer (the request passes unchecked,
        counted in ``omnistock_rate_limit_unchecked_total``: a Redis hiccup must not turn reads
        that may not need Redis into errors)."""
        try:
            return await self._limiter.hit(who.id, policy)
        except (TimeoutError, RedisError, OSError) as exc:
            self._metrics.rate_limit_unchecked.inc(role=who.role.value)
            now = time.monotonic()
            if now - self._last_warning > _WARN_EVERY:
                self._last_warning = now
                log.warning("rate limiter: Redis does not answer, requests pass unchecked: %s", exc)
            return None

    def refused(self, who: Principal) -> None:
        """Count a 429."""
        self._metrics.rate_limited.inc(role=who.role.value)
