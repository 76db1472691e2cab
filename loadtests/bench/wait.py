"""The WAIT-replicas row (issue 14 item 2): reservations/s with OMNISTOCK_REDIS_WAIT_REPLICAS=1
(each flushed batch of scripts ends with one WAIT, redis/replicated.py) against the same calls
without it, on a primary with one replica of its own, rounds interleaved in one run
(loadtests/wait_cost.py measures; ``python -m loadtests.wait_cost`` adds WAITAOF). No budget: it
is the price of a guarantee, reported."""

from __future__ import annotations

import asyncio

from loadtests.bench.report import Row
from loadtests.bench.scenarios import Bench
from loadtests.cluster_cost import TASKS
from loadtests.replica_pair import ReplicaPair
from loadtests.wait_cost import measure


def wait_replicas(bench: Bench) -> None:
    """Reservations/s (64 concurrent callers, in-process store calls) with WAIT 1 vs without."""
    plan = bench.plan
    per_task = max(50, plan.script_calls // 1000)
    with ReplicaPair(bench.stack.base / "wait-replicas").running() as pair:
        found = asyncio.run(measure(pair.url, plan.rounds, per_task, ("no WAIT", "WAIT 1")))
    (cpu_off, off), (cpu_on, on) = found["no WAIT"], found["WAIT 1"]
    bench.add(
        Row(
            "WAIT replicas cost",
            "reservations/s with WAIT 1 vs without",
            on,
            "res/s",
            baseline=off,
            baseline_name="no WAIT",
            note=f"{TASKS} callers, 1 replica; client CPU {cpu_on:.0f} vs {cpu_off:.0f} us/reserve",
        )
    )
