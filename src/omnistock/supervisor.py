"""Supervision of background loops: the last line behind each loop's own retries.

A loop that raises anything but a cancellation (or ends by itself) is restarted after a capped,
doubling delay; each restart is counted in /metrics. A loop counts as failing from that moment
until its next run has lasted ``healthy_seconds`` without raising: /readyz answers 503 naming it
meanwhile. A healthy run also resets the delay to its initial value.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from omnistock.metrics import Metrics
from omnistock.tasks import reraise_if_cancelled

log = logging.getLogger("omnistock.supervisor")

LoopFactory = Callable[[], Awaitable[None]]


class LoopState:
    """What the supervisor knows of one loop."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.restarts = 0
        self.last_error = ""  # of the last failure; "" while it never failed
        self.running_since: float | None = None  # loop time the current run began


class Supervisor:
    """Runs background loops for the life of the process and restarts them when they fail."""

    def __init__(
        self,
        metrics: Metrics,
        *,
        backoff_initial: float = 0.1,
        backoff_max: float = 5.0,
        healthy_seconds: float = 2.0,
    ) -> None:
        self.metrics = metrics
        self.backoff_initial = backoff_initial
        self.backoff_max = max(backoff_max, backoff_initial)
        self.healthy_seconds = healthy_seconds
        self.loops: dict[str, LoopState] = {}
        self.tasks: list[asyncio.Task[None]] = []
        self.stopping = False

    def spawn(self, name: str, factory: LoopFactory) -> None:
        """Run ``factory()`` (a fresh coroutine per run) under supervision, as ``name``."""
        if name in self.loops:
            raise ValueError(f"a loop named {name!r} is already supervised")
        state = self.loops[name] = LoopState(name)
        self.tasks.append(asyncio.create_task(self._supervise(state, factory), name=name))

    def failing(self) -> dict[str, str]:
        """Loops that failed and have not run healthily since: name -> the last error."""
        now = asyncio.get_running_loop().time()
        return {
            state.name: state.last_error
            for state in self.loops.values()
            if state.last_error
            and (state.running_since is None or now - state.running_since < self.healthy_seconds)
        }

    async def _supervise(self, state: LoopState, factory: LoopFactory) -> None:
        loop = asyncio.get_running_loop()
        delay = self.backoff_initial
        while True:
            started = state.running_since = loop.time()
            try:
                await factory()
                error = "ended by itself"
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                reraise_if_cancelled()  # a cancel surfacing as a client error still stops it
                error = f"{type(exc).__name__}: {exc}"[:500]
                if not self.stopping:
                    log.exception("background loop %s failed; restarting it", state.name)
            state.running_since = None
            if self.stopping:
                return  # a cooperative stop (the persister) ends its loop normally
            if loop.time() - started >= self.healthy_seconds:
                delay = self.backoff_initial  # it had recovered: start the backoff afresh
            state.last_error = error
            state.restarts += 1
            self.metrics.restarts.inc(loop=state.name)
            if error == "ended by itself":
                log.error("background loop %s ended by itself; restarting it", state.name)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.backoff_max)

    async def stop(self) -> None:
        """Cancel every loop and wait until each has ended. A task can swallow a cancellation
        (a client library may turn it into an error its retry loop catches), so what is still
        running after a second is cancelled again."""
        self.stopping = True
        pending = {task for task in self.tasks if not task.done()}
        while pending:
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=1.0)
