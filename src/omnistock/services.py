"""The runtime of one process: clients, caches and background tasks, opened in the app lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import redis.asyncio as aredis
from redis.exceptions import RedisClusterException, RedisError

from omnistock.gctune import settle_heap
from omnistock.looplag import LoopLag
from omnistock.metrics import Metrics
from omnistock.redis.client import any_client
from omnistock.redis.cluster import hot_client
from omnistock.redis.multiplex import Multiplexer
from omnistock.redis.ratelimit import RateLimiter
from omnistock.redis.replicated import wait_stats, with_replica_waits
from omnistock.redis.scripts import Scripts
from omnistock.redis.store import StockStore
from omnistock.settings import Settings
from omnistock.stream.fanout import Fanout
from omnistock.supervisor import Supervisor
from omnistock.sync.gate import WriteGate, run_backlog_monitor, run_postgres_probe
from omnistock.sync.persister import Persister
from omnistock.sync.rebuild import ensure_ready
from omnistock.usecases.availability import Availability
from omnistock.usecases.caches import (
    LOOKUP_ERRORS,
    KeyCache,
    LocationCache,
    follow_invalidations,
)
from omnistock.usecases.feeds import Feeds
from omnistock.usecases.history import History
from omnistock.usecases.imports import Imports
from omnistock.usecases.keys import Keys
from omnistock.usecases.locations import Locations
from omnistock.usecases.operations import Operations
from omnistock.usecases.positions import Positions
from omnistock.usecases.ratelimits import RateLimits
from omnistock.usecases.reservations import Reservations
from omnistock.usecases.sourcing import Sourcing
from omnistock.usecases.sourcing_holds import SourcingHolds
from omnistock.usecases.stock import Stock
from omnistock.usecases.stream import Stream
from omnistock.usecases.supply import Supply
from omnistock.usecases.transfers import Transfers

log = logging.getLogger("omnistock")


class StartupError(RuntimeError):
    """The service cannot start (a store unreachable, or data made with other settings)."""


async def _retry(what: str, attempt: Callable[[], Awaitable[Any]], seconds: float = 30.0) -> Any:
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        try:
            return await attempt()
        except (
            OSError,
            RedisError,
            RedisClusterException,  # no cluster node answered yet
            asyncpg.PostgresError,
            asyncpg.InterfaceError,
        ) as exc:
            if asyncio.get_running_loop().time() > deadline:
                raise StartupError(f"{what} unreachable after {seconds:.0f}s: {exc}") from exc
            log.warning("%s not reachable yet (%s); retrying", what, exc)
            await asyncio.sleep(0.5)


class Stores:
    """The adapters every process builds the same way (a server's ``Services`` and each CLI
    command): the pools and the live-state store."""

    def __init__(
        self, settings: Settings, redis: aredis.Redis, hot: Multiplexer, db: asyncpg.Pool
    ) -> None:
        self.settings = settings
        self.redis = redis
        self.db = db
        self.scripts = Scripts.load()
        self.store = StockStore.from_settings(settings, redis, hot, self.scripts)
        self.store.lease_ms = round(settings.sourcing_lease_seconds * 1000)
        # Transfers (issue 13)
        self.store.transfer_lease_ms = round(settings.transfer_lease_seconds * 1000)
        self.store.transfer_retention_ms = settings.finished_transfer_retention_seconds * 1000


@contextlib.asynccontextmanager
async def open_stores(settings: Settings, *, ready: bool = True) -> AsyncIterator[Stores]:
    """Connect (for a CLI command); with ``ready`` also make Redis servable (initialise or
    rebuild it)."""
    async with connect(settings) as (redis, hot, db):
        stores = Stores(settings, redis, hot, db)
        if ready:
            await ensure_ready(redis, db, stores.scripts, settings.partitions)
        yield stores


class Services:
    """Everything a request handler needs, shared by the whole process."""

    def __init__(
        self, settings: Settings, redis: aredis.Redis, hot: Multiplexer, db: asyncpg.Pool
    ) -> None:
        self.settings = settings
        self.redis = redis
        self.db = db
        self.metrics = Metrics()
        self.store = Stores(settings, redis, hot, db).store
        self.locations = LocationCache(db)
        self.keys = KeyCache(db, settings.admin_key)
        self.fanout = Fanout(
            settings,
            redis,
            self.locations,
            self.metrics,
            self.keys,
            lookup_errors=LOOKUP_ERRORS,
        )
        self.persister = Persister(
            redis,
            db,
            settings.partitions,
            batch=settings.persister_batch,
            claim_idle_ms=settings.persister_claim_idle_ms,
            metrics=self.metrics,
            cluster_interval_ms=settings.persister_cluster_interval_ms,
        )
        self.gate = WriteGate(settings, self.persister)
        self.store.gate = self.gate.check
        if settings.ack == "postgres":
            self.store.on_written = self.persister.persist_range
        self.looplag = LoopLag(self.metrics)
        self.supervisor = Supervisor(
            self.metrics,
            backoff_initial=settings.background_backoff_initial_seconds,
            backoff_max=settings.background_backoff_max_seconds,
            healthy_seconds=settings.background_healthy_seconds,
        )
        self.metrics.gauge(
            "omnistock_background_loops_failing",
            "Background loops that failed and have not run healthily since",
            lambda: len(self.supervisor.failing()),
        )
        if (waits := wait_stats(hot)) is not None:  # OMNISTOCK_REDIS_WAIT_REPLICAS
            self.metrics.gauge(
                "omnistock_redis_wait_unconfirmed",
                "Writes applied on the primary but not confirmed by the replicas in time (503)",
                lambda: waits.unconfirmed,
            )
            self.metrics.gauge(
                "omnistock_redis_wait_confirmed",
                "Writes confirmed by OMNISTOCK_REDIS_WAIT_REPLICAS replicas before their answer",
                lambda: waits.writes,
            )
            self.metrics.gauge(
                "omnistock_redis_wait_last_replicas",
                "Replicas that confirmed the last WAIT (below OMNISTOCK_REDIS_WAIT_REPLICAS: 503s)",
                lambda: waits.last_confirmed,
            )
        self.rate_limiter = RateLimiter(hot, self.store.scripts.library)
        self.usecases = UseCases(self)

    def spawn(self, loop: Callable[[], Awaitable[None]], name: str) -> None:
        """Run ``loop()`` for the life of the process, supervised: restarted with backoff after
        any exception, counted in /metrics, shown by /readyz while it keeps failing."""
        given: object = loop  # a coroutine (round-1 style) runs once and cannot be restarted
        if inspect.iscoroutine(given):
            given.close()
            raise TypeError(f"spawn {name!r}: pass the function, not a coroutine (restartable)")
        self.supervisor.spawn(name, loop)

    async def stop(self) -> None:
        """Stop the background loops and wait until each has ended. The persister is asked to
        stop (it then returns after its current read); every loop is cancelled as well."""
        self.persister.stop()
        await self.supervisor.stop()


class UseCases:
    """The use cases the handlers receive by dependency injection (app.py provides each by its
    attribute name)."""

    def __init__(self, svc: Services) -> None:
        self.locations = Locations(svc.db, svc.redis, svc.store, svc.locations)
        self.keys = Keys(svc.db, svc.redis, svc.locations, svc.keys)
        self.history = History(svc.db, svc.locations)
        self.reservations = Reservations(
            svc.db, svc.store, svc.locations, svc.metrics, svc.settings.default_ttl_seconds
        )
        self.stream = Stream(svc.fanout, svc.settings, LOOKUP_ERRORS)
        self.stock = Stock(svc.store, svc.locations)
        self.availability = Availability(svc.store, svc.locations)
        self.sourcing = Sourcing(svc.store, svc.locations, svc.settings.sourcing_max_plan_cells)
        self.sourcing_holds = SourcingHolds(
            svc.db,
            svc.store,
            self.sourcing,
            default_ttl_seconds=svc.settings.default_ttl_seconds,
            replay_wait_seconds=svc.settings.sourcing_replay_wait_seconds,
        )
        self.positions = Positions(svc.store, svc.locations)
        self.feeds = Feeds(svc.store, svc.locations, svc.fanout)
        self.imports = Imports(svc.store, svc.locations, svc.gate, svc.settings)
        self.rate_limits = RateLimits(svc.rate_limiter, svc.metrics)
        # Stock states (issue 13): supply.
        self.supply = Supply(svc.db, svc.store, svc.locations)
        # Transfers (issue 13).
        self.transfers = Transfers(svc.db, svc.store, svc.locations)
        self.operations = Operations(
            svc.redis,
            svc.db,
            svc.supervisor,
            svc.metrics,
            svc.keys,
            svc.settings.metrics_key,
            svc.settings.worker_stale_seconds,
        )


@contextlib.asynccontextmanager
async def connect(
    settings: Settings,
) -> AsyncIterator[tuple[aredis.Redis, Multiplexer, asyncpg.Pool]]:
    """The process's Redis pool, its pipelined Redis connection for requests, and its Postgres
    pool, waiting (a while) for Redis and Postgres to come up."""
    if settings.redis_url is None or settings.database_url is None:
        raise StartupError("OMNISTOCK_REDIS_URL and OMNISTOCK_DATABASE_URL must be set here")
    redis = any_client(settings.redis_url, settings.redis_max_connections)
    try:
        await _retry("redis", redis.ping)
        db: asyncpg.Pool = await _retry(
            "postgres",
            lambda: asyncpg.create_pool(
                settings.database_url, min_size=1, max_size=settings.database_pool_size
            ),
        )
        hot = with_replica_waits(hot_client(settings), settings)
        try:
            yield redis, hot, db
        finally:
            await hot.aclose()
            await db.close()
    finally:
        await redis.aclose()


@contextlib.asynccontextmanager
async def open_services(settings: Settings) -> AsyncIterator[Services]:
    """Connect, warm caches, start the serving process's own loops; undo all of it on exit."""
    async with connect(settings) as (redis, hot, db):
        svc = Services(settings, redis, hot, db)
        scripts = svc.store.scripts
        await scripts.library.load(redis)
        try:
            done = await ensure_ready(redis, db, scripts, settings.partitions)
        except ValueError as exc:  # data made with another partition count
            raise StartupError(str(exc)) from exc
        if done != "ready":
            log.warning("redis: %s", done)
        await svc.locations.reload()
        await svc.store.put_location_meta(svc.locations.all())
        svc.spawn(
            lambda: follow_invalidations(redis, svc.keys, svc.locations, svc.fanout.keys_changed),
            "invalidations",
        )
        # The persister, sweeper, trimmer, watchdog and pruner run in the worker (worker.py).
        svc.spawn(lambda: run_backlog_monitor(svc.gate, redis, settings.partitions), "backlog")
        if settings.ack == "postgres":  # the gate needs to know whether Postgres answers
            svc.spawn(lambda: run_postgres_probe(svc.persister, db), "postgres-probe")
        await svc.fanout.start()
        for name, loop in svc.fanout.loops().items():
            svc.spawn(loop, name)
        # Last: what start-up built lives as long as the process (see gctune); the probe starts
        # after it, so the start-up collection is not counted as serving-loop lag.
        if settings.gc_freeze:
            settle_heap()
        svc.spawn(lambda: svc.looplag.run(settings.loop_lag_interval_seconds), "looplag")
        try:
            yield svc
        finally:
            await svc.stop()
