"""Loop health of worker processes, kept in Redis so every serving process can show it.

Each worker writes a small hash (``keys.worker_report``) every ``worker_report_seconds``, with a
TTL, and indexes its id by report time in ``keys.WORKERS``. A serving process reads the reports of
the last ``worker_stale_seconds``: /readyz answers 503 naming "worker" when there is none, and
names the loops a worker reports failing; /metrics sums the workers' restart counters.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import msgspec

from omnistock.redis import keys
from omnistock.redis.client import is_cluster
from omnistock.redis.scripts import Scripts

_encode = msgspec.json.encode
_decode_failing = msgspec.json.Decoder(dict[str, str]).decode
_decode_restarts = msgspec.json.Decoder(dict[str, int]).decode
_MAX_WORKERS = 1000  # the most recent reports read (a deployment runs a handful)


class WorkerReport(msgspec.Struct, frozen=True):
    """What one worker said of itself."""

    id: str
    pid: int
    at_ms: int  # Redis clock of the report
    failing: dict[str, str]  # loop -> its last error, while it has not run healthily since
    restarts: dict[str, int]  # loop -> restarts since the worker started


async def publish(
    redis: Any,
    scripts: Scripts,
    worker_id: str,
    pid: int,
    failing: Mapping[str, str],
    restarts: Mapping[str, int],
    ttl_seconds: float,
) -> None:
    """Write this worker's report (worker_report.lua: the hash with its TTL and the index entry,
    timed by the Redis clock)."""
    ttl_ms = max(1, int(ttl_seconds * 1000))
    args = [worker_id, ttl_ms, pid, _encode(dict(failing)), _encode(dict(restarts))]
    await scripts.worker_report(redis, [keys.worker_report(worker_id), keys.WORKERS], args)


async def withdraw(redis: Any, scripts: Scripts, worker_id: str) -> None:
    """Remove this worker's report (it is stopping)."""
    await scripts.worker_withdraw(redis, [keys.worker_report(worker_id), keys.WORKERS], [worker_id])


async def live_reports(redis: Any, stale_seconds: float) -> list[WorkerReport]:
    """Reports of the workers heard from in the last ``stale_seconds`` (of the Redis clock)."""
    if is_cluster(redis):
        # TIME cannot join a cluster pipeline (redis-py refuses it): ask the node keeping the
        # index, whose clock timed the reports (worker_report.lua); the index first, so that
        # the slot map is current (MOVED followed) when that node is looked up.
        indexed = await redis.zrange(keys.WORKERS, 0, _MAX_WORKERS - 1, desc=True, withscores=True)
        node = redis.get_node_from_key(keys.WORKERS)
        seconds, micros = await redis.execute_command("TIME", target_nodes=node)
    else:
        async with redis.pipeline(transaction=False) as pipe:
            pipe.time()
            pipe.zrange(keys.WORKERS, 0, _MAX_WORKERS - 1, desc=True, withscores=True)
            (seconds, micros), indexed = await pipe.execute()
    since = seconds * 1000 + micros // 1000 - int(stale_seconds * 1000)
    ids = [worker_id for worker_id, at in indexed if at >= since]
    if not ids:
        return []
    async with redis.pipeline(transaction=False) as pipe:
        for worker_id in ids:
            pipe.hgetall(keys.worker_report(worker_id.decode()))
        found = await pipe.execute()
    reports = []
    for worker_id, fields in zip(ids, found, strict=True):
        if not fields or int(fields.get(b"at", 0)) < since:
            continue  # expired between the two reads
        reports.append(
            WorkerReport(
                id=worker_id.decode(),
                pid=int(fields.get(b"pid", 0)),
                at_ms=int(fields[b"at"]),
                failing=_decode_failing(fields.get(b"failing", b"{}")),
                restarts=_decode_restarts(fields.get(b"restarts", b"{}")),
            )
        )
    return reports


def failing_loops(reports: list[WorkerReport]) -> dict[str, str]:
    """Loops failing in any live worker: name -> "error (worker id)"."""
    failing: dict[str, str] = {}
    for report in sorted(reports, key=lambda r: r.id):
        for name, error in report.failing.items():
            failing.setdefault(name, f"{error} (worker {report.id})")
    return failing


def render_metrics(reports: list[WorkerReport]) -> str:
    """Prometheus text for the live workers: how many, their failing loops, and their restart
    counters summed per loop."""
    restarts: dict[str, int] = {}
    for report in reports:
        for name, count in report.restarts.items():
            restarts[name] = restarts.get(name, 0) + count
    lines = [
        "# HELP omnistock_workers_alive Worker processes that reported within worker_stale_seconds",
        "# TYPE omnistock_workers_alive gauge",
        f"omnistock_workers_alive {len(reports)}",
        "# HELP omnistock_worker_loops_failing Background loops failing in the live workers",
        "# TYPE omnistock_worker_loops_failing gauge",
        f"omnistock_worker_loops_failing {sum(len(r.failing) for r in reports)}",
        "# HELP omnistock_worker_background_restarts_total Restarts of the live workers' loops",
        "# TYPE omnistock_worker_background_restarts_total counter",
    ]
    lines += [
        f'omnistock_worker_background_restarts_total{{loop="{name}"}} {float(count)}'
        for name, count in sorted(restarts.items())
    ]
    return "\n".join(lines) + "\n"


async def worker_readiness(redis: Any, stale_seconds: float, failing: dict[str, str]) -> list[str]:
    """For /readyz: "worker" down when no worker reported within ``stale_seconds`` (or the
    reports cannot be read); the live workers' failing loops are added to ``failing``."""
    try:
        reports = await asyncio.wait_for(live_reports(redis, stale_seconds), timeout=2.0)
    except Exception as exc:
        return [f"worker: reports unreadable ({type(exc).__name__} {exc})".strip()]
    if not reports:
        return [f"worker: no live worker has reported in the last {stale_seconds:g}s"]
    for name, error in failing_loops(reports).items():
        failing.setdefault(name, error)
    return []


async def worker_metrics(redis: Any, stale_seconds: float) -> str:
    """For /metrics: the live workers' lines ("" when Redis does not answer)."""
    try:
        reports = await asyncio.wait_for(live_reports(redis, stale_seconds), timeout=2.0)
    except Exception:
        return ""
    return render_metrics(reports)
