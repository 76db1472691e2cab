"""Operations: readiness (stores answer, no background loop failing) and metrics."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from omnistock.domain.roles import Principal
from omnistock.metrics import Metrics
from omnistock.redis.workers import worker_metrics, worker_readiness
from omnistock.supervisor import Supervisor
from omnistock.usecases.caches import KeyCache


async def _check(what: str, probe: Any) -> str | None:
    try:
        await asyncio.wait_for(probe, timeout=2.0)
    except Exception as exc:
        return f"{what}: {type(exc).__name__} {exc}".strip()
    return None


class Operations:
    """The operations capability of one process."""

    def __init__(
        self,
        redis: Any,
        db: asyncpg.Pool,
        supervisor: Supervisor,
        metrics: Metrics,
        keys: KeyCache,
        metrics_key: str | None,
        worker_stale_seconds: float,
    ) -> None:
        self._redis = redis
        self._db = db
        self._supervisor = supervisor
        self._metrics = metrics
        self._keys = keys
        self.metrics_key = metrics_key
        self._worker_stale = worker_stale_seconds

    async def down(self) -> tuple[list[str], dict[str, str]]:
        """What is not ready (one reason each), and the failing loops by name."""
        down = [
            reason
            for reason in await asyncio.gather(
                _check("redis", self._redis.ping()),
                _check("postgres", self._db.fetchval("SELECT 1")),
            )
            if reason
        ]
        # Background loops that failed and have not run healthily since (see supervisor.py), here
        # and in the live workers (redis/workers.py); no live worker at all is "worker" down.
        failing = self._supervisor.failing()
        down += await worker_readiness(self._redis, self._worker_stale, failing)
        down += [f"{name} loop: {error}" for name, error in sorted(failing.items())]
        return down, failing

    async def principal(self, secret: str) -> Principal | None:
        """The API key ``secret`` stands for (None: unknown or deleted)."""
        return await self._keys.principal(secret)

    async def metrics_text(self) -> str:
        """The Prometheus exposition of this process's metrics and the live workers'."""
        return self._metrics.render() + await worker_metrics(self._redis, self._worker_stale)
