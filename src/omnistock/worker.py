"""The worker runtime: the background work that keeps Redis and Postgres in step, off the serving
loop. ``omnistock worker`` runs it as a process (``serve`` starts one by itself).

It runs, each supervised: the persister (streams -> Postgres, a consumer group), the expiry
sweeper (expire.lua ends a reservation once), the trimmer (only below what the group acked), the
watchdog (rebuilds Redis from Postgres when it comes back empty, under the rebuild lock), the
pruner (row locks) and the courier (finishes or undoes the sourcing holds a crash left): several
workers on one deployment share the work safely. It reports its loops' health to Redis
(redis/workers.py) for the serving processes' /readyz and /metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import socket
from collections.abc import AsyncIterator

from redis.exceptions import RedisError

from omnistock.postgres.prune import run_pruner
from omnistock.redis import workers
from omnistock.redis.courier import run_courier
from omnistock.redis.sweeper import run_sweeper
from omnistock.redis.transfer_courier import run_transfer_courier
from omnistock.services import Services, StartupError, connect
from omnistock.settings import Settings
from omnistock.supervisor import Supervisor
from omnistock.sync.rebuild import ensure_ready
from omnistock.sync.trimmer import run_trimmer
from omnistock.sync.watchdog import run_watchdog
from omnistock.tasks import reraise_if_cancelled

log = logging.getLogger("omnistock.worker")

WORKER_LOOPS = (
    "sweeper",
    "persister",
    "trimmer",
    "watchdog",
    "pruner",
    "courier",
    "transfer-courier",
)
REPORT_LOOP = "worker-report"
_PERSISTER_FINISH_SECONDS = 10.0  # a stopping worker lets the persister end its batch


class WorkerRuntime:
    """The worker's loops on ``svc`` (its clients, store, persister and supervisor)."""

    def __init__(self, svc: Services) -> None:
        self.svc = svc
        self.settings = svc.settings
        self.id = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        # The report loop has a supervisor of its own: the work's supervisor holds the work.
        self.reporter = Supervisor(
            svc.metrics,
            backoff_initial=self.settings.background_backoff_initial_seconds,
            backoff_max=self.settings.background_backoff_max_seconds,
            healthy_seconds=self.settings.background_healthy_seconds,
        )

    async def start(self) -> None:
        """Start the loops and report once (so a serving process sees this worker at once)."""
        svc, settings = self.svc, self.settings
        store, redis, db = svc.store, svc.redis, svc.db
        svc.spawn(
            lambda: run_sweeper(store, settings.sweeper_interval_seconds, svc.metrics), "sweeper"
        )
        svc.spawn(svc.persister.run, "persister")
        svc.spawn(lambda: run_trimmer(redis, store.scripts, settings), "trimmer")
        svc.spawn(lambda: run_watchdog(redis, db, store.scripts, settings.partitions), "watchdog")
        svc.spawn(lambda: run_pruner(db, settings, svc.metrics), "pruner")
        svc.spawn(
            lambda: run_courier(
                store,
                settings.sourcing_courier_interval_seconds,
                settings.sourcing_courier_batch,
            ),
            "courier",
        )
        svc.spawn(
            lambda: run_transfer_courier(
                store,
                settings.transfer_courier_interval_seconds,
                settings.transfer_courier_batch,
            ),
            "transfer-courier",
        )
        with contextlib.suppress(RedisError, OSError):
            await self.report()
        self.reporter.spawn(REPORT_LOOP, self._report_loop)

    async def report(self) -> None:
        """Publish this worker's loop health."""
        loops = {**self.svc.supervisor.loops, **self.reporter.loops}
        failing = {**self.svc.supervisor.failing(), **self.reporter.failing()}
        ours = (*WORKER_LOOPS, REPORT_LOOP)
        await workers.publish(
            self.svc.redis,
            self.svc.store.scripts,
            self.id,
            os.getpid(),
            {name: error for name, error in failing.items() if name in ours},
            {name: state.restarts for name, state in loops.items() if name in ours},
            ttl_seconds=self.settings.worker_stale_seconds,
        )

    async def _report_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.worker_report_seconds)
            try:
                await self.report()
            except (RedisError, OSError) as exc:
                reraise_if_cancelled()
                log.warning("worker report: %s", exc)

    async def stop(self) -> None:
        """Stop reporting and withdraw the report; the loops stop with ``svc``."""
        await self.reporter.stop()
        with contextlib.suppress(RedisError, OSError):
            await workers.withdraw(self.svc.redis, self.svc.store.scripts, self.id)

    async def finish(self) -> None:
        """Stop everything: the persister first ends the batch it is writing, then the rest
        is cancelled."""
        await self.stop()
        supervisor = self.svc.supervisor
        supervisor.stopping = True  # a loop that returns now is not restarted
        self.svc.persister.stop()
        persisting = {t for t in supervisor.tasks if t.get_name() == "persister" and not t.done()}
        if persisting:
            await asyncio.wait(persisting, timeout=_PERSISTER_FINISH_SECONDS)
        await self.svc.stop()


@contextlib.asynccontextmanager
async def open_worker(settings: Settings) -> AsyncIterator[WorkerRuntime]:
    """A worker runtime with clients of its own, started; finished on exit."""
    async with connect(settings) as (redis, hot, db):
        svc = Services(settings, redis, hot, db)
        await svc.store.scripts.library.load(redis)
        try:
            done = await ensure_ready(redis, db, svc.store.scripts, settings.partitions)
        except ValueError as exc:  # data made with another partition count
            raise StartupError(str(exc)) from exc
        if done != "ready":
            log.warning("redis: %s", done)
        runtime = WorkerRuntime(svc)
        try:
            await runtime.start()
            yield runtime
        finally:
            await runtime.finish()


async def run_worker(settings: Settings, stop: asyncio.Event) -> None:
    """Run the background work until ``stop`` is set."""
    async with open_worker(settings) as runtime:
        log.info("worker %s running: %s", runtime.id, ", ".join(WORKER_LOOPS))
        await stop.wait()
        log.info("worker %s stopping", runtime.id)


def worker_main(settings: Settings) -> int:
    """``omnistock worker``: run until SIGTERM or SIGINT, then stop cleanly (exit status 0)."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_worker(settings, stop)

    try:
        asyncio.run(main())
    except StartupError as exc:
        log.error("worker: %s", exc)
        return 1
    return 0
