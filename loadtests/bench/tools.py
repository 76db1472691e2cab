"""The load generators (wrk, redis-benchmark) run as child processes, and their figures."""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from loadtests.bench.stack import pinned

WRK_DIR = Path(__file__).resolve().parent.parent / "wrk"


@dataclass(frozen=True)
class Load:
    """What one load round measured."""

    rps: float
    statuses: dict[int, int]
    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    generator_cpu: float  # share of one core the generator used


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_wrk(
    url: str,
    script: str,
    *,
    seconds: float,
    connections: int,
    cpus: str | None,
    env: Mapping[str, str],
) -> Load:
    """One wrk round with ``loadtests/wrk/<script>.lua``; its ``<script>-summary`` line parsed."""
    command = pinned(
        cpus,
        [
            "wrk",
            *("-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s"),
            *("-s", str(WRK_DIR / f"{script}.lua"), url),
        ],
    )
    before = _children_cpu()
    done = subprocess.run(
        command, env={**os.environ, **env}, capture_output=True, text=True, check=False
    )
    cpu = _children_cpu() - before
    marker = f"{script}-summary "
    lines = [line for line in done.stdout.splitlines() if line.startswith(marker)]
    if done.returncode or not lines:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout}{done.stderr}")
    found = json.loads(lines[-1].removeprefix(marker))
    if found["errors"]:
        raise RuntimeError(f"wrk saw {found['errors']} socket errors: {done.stdout}")
    return Load(
        rps=found["rps"],
        statuses={int(k): v for k, v in found["statuses"].items()},
        requests=found["requests"],
        seconds=found["seconds"],
        p50_ms=found["p50_ms"],
        p90_ms=found["p90_ms"],
        p99_ms=found["p99_ms"],
        generator_cpu=cpu / found["seconds"],
    )


def redis_benchmark(
    port: int,
    command: Sequence[str],
    *,
    requests: int,
    pipeline: int,
    cpus: str | None,
    password: str | None = None,
) -> tuple[float, float]:
    """Calls/s of ``command`` from redis-benchmark (50 clients, pipelined; ``__rand_int__`` in an
    argument becomes a random number per call), and the generator's share of a core."""
    argv = pinned(
        cpus,
        [
            "redis-benchmark",
            *("-h", "127.0.0.1", "-p", str(port), "-n", str(requests), "-c", "50"),
            *(("-a", password) if password else ()),
            *("-P", str(pipeline), "-r", "1000000000", "--csv", *command),
        ],
    )
    before = _children_cpu()
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    cpu = _children_cpu() - before
    rows = [line.split('","') for line in done.stdout.splitlines() if line.startswith('"')]
    if done.returncode or len(rows) < 2:
        raise RuntimeError(f"redis-benchmark failed: {done.stdout}{done.stderr}")
    rps = float(rows[1][1].strip('"'))
    return rps, cpu / (requests / rps)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))
