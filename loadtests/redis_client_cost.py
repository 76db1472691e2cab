"""CPU per Redis command on the request path: redis-py's pool (as the background tasks use it)
against the pipelined request connection (``redis/multiplex.py``), on a Valkey of its own.
64 tasks each send HMGETs of one position; rounds alternate; medians printed.

    python -m loadtests.redis_client_cost [--rounds 3] [--per-task 300]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import uvloop

from omnistock.embedded import EmbeddedValkey
from omnistock.redis.client import redis_client
from omnistock.redis.multiplex import Multiplexer

TASKS = 64


async def _drive(call: Callable[..., Awaitable[Any]], per_task: int) -> tuple[float, float]:
    """(us of this process's CPU per command, commands/s)."""

    async def task() -> None:
        for _ in range(per_task):
            await call("HMGET", "pos", "oh", "r", "ss", "v", "ts")

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(task() for _ in range(TASKS)))
    n = TASKS * per_task
    return (time.process_time() - cpu) / n * 1e6, n / (time.perf_counter() - wall)


async def _main(url: str, rounds: int, per_task: int) -> None:
    pool, hot = redis_client(url, TASKS), Multiplexer(url)
    await pool.hset("pos", mapping={"oh": 10, "r": 2, "v": 3, "ts": 0})
    clients = {"redis-py pool": pool.execute_command, "pipelined connection": hot.execute_command}
    found: dict[str, list[tuple[float, float]]] = {name: [] for name in clients}
    for _ in range(rounds):
        for name, call in clients.items():
            found[name].append(await _drive(call, per_task))
    await hot.aclose()
    await pool.aclose()
    print(f"{'client':22} {'cpu us/cmd':>10} {'cmds/s':>9}")
    for name, runs in found.items():
        cpu = statistics.median(r[0] for r in runs)
        print(f"{name:22} {cpu:10.1f} {statistics.median(r[1] for r in runs):9,.0f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--per-task", type=int, default=300)
    args = p.parse_args()
    valkey = EmbeddedValkey(Path(tempfile.mkdtemp(prefix="omnistock-client-")) / "valkey")
    valkey.start()
    try:
        uvloop.run(_main(valkey.url, args.rounds, args.per_task))
    finally:
        valkey.stop()


if __name__ == "__main__":
    main()
