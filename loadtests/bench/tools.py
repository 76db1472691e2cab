"""The load generators (wrk, redis-benchmark) run as child processes, and their figures."""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from loadtests.bench.stack import pinned

WRK_DIR = Path(__file__).resolve().parent.parent / "wrk"
ROOT = WRK_DIR.parents[1]


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


@dataclass(frozen=True)
class PacedLoad:
    """What one paced (open-loop, fixed-rate) round measured (loadtests/paced.py)."""

    rate: float
    rps: float
    statuses: dict[int, int]
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    generator_lag_p99_ms: float  # how late the generator's own loop woke (its p99)
    generator_cpu: float


def run_paced(
    url: str,
    *,
    rate: float,
    seconds: float,
    connections: int,
    cpus: str | None,
    path: str,
    key: str,
    method: str = "GET",
    body_file: str | None = None,
) -> PacedLoad:
    """One round of ``python -m loadtests.paced`` at ``rate`` requests/s, on the load cpus."""
    command = pinned(
        cpus,
        [
            sys.executable,
            *("-m", "loadtests.paced", "--url", url, "--rate", f"{rate:.1f}"),
            *("--seconds", f"{seconds:g}", "--connections", str(connections)),
            *("--method", method, "--path", path, "--key", key),
            *(("--body-file", body_file) if body_file else ()),
        ],
    )
    before = _children_cpu()
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
    cpu = _children_cpu() - before
    lines = [x for x in done.stdout.splitlines() if x.startswith("paced-summary ")]
    if done.returncode or not lines:
        raise RuntimeError(f"paced load failed ({done.returncode}): {done.stdout}{done.stderr}")
    found = json.loads(lines[-1].removeprefix("paced-summary "))
    if found["errors"]:
        raise RuntimeError(f"paced load saw {found['errors']} socket errors")
    return PacedLoad(
        rate=found["rate"],
        rps=found["rps"],
        statuses={int(k): v for k, v in found["statuses"].items()},
        p50_ms=found["p50_ms"],
        p90_ms=found["p90_ms"],
        p99_ms=found["p99_ms"],
        max_ms=found["max_ms"],
        generator_lag_p99_ms=found["generator_lag_p99_ms"],
        generator_cpu=cpu / found["seconds"],
    )


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system, every thread) of one process so far (0 once it has ended)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_wait_seconds(pid: int) -> float:
    """Seconds the process's threads have spent runnable but waiting for a cpu (schedstat):
    time the server could not run because something else had its core."""
    total = 0
    for stat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        try:
            total += int(stat.read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue  # a thread that ended meanwhile
    return total / 1e9


def _descendants(root: int) -> list[int]:
    """``root`` and every process under it (from /proc's parent pids)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def move_tree(root: int, cpus: set[int]) -> dict[int, set[int]]:
    """Run every thread of ``root`` and of its descendants on ``cpus`` (processes forked later
    inherit it); what each thread ran on before, for :func:`restore_affinity`."""
    before: dict[int, set[int]] = {}
    for pid in _descendants(root):
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                tid = int(task.name)
                before[tid] = os.sched_getaffinity(tid)
                os.sched_setaffinity(tid, cpus)
            except (OSError, ValueError):
                continue  # ended meanwhile
    return before


def restore_affinity(before: dict[int, set[int]]) -> None:
    for tid, cpus in before.items():
        try:
            os.sched_setaffinity(tid, cpus)
        except OSError:
            continue
