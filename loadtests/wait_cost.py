"""What OMNISTOCK_REDIS_WAIT_REPLICAS=1 costs: reservations/s on the request path without WAIT,
with WAIT 1 and with WAITAOF 1 1 (the service's choice when the primary has appendonly on), on
one primary (the embedded one: AOF everysec) with one replica, through the same store code
(``StockStore.reserve``; with WAIT the scripts go through redis/replicated.py's write connection,
each flushed batch ending with one WAIT). 64 tasks reserve 1 unit each at 64 locations; rounds
interleave the modes (WAITAOF's with fewer reservations: it answers about once a second);
medians printed with this process's CPU per reservation.

    python -m loadtests.wait_cost [--rounds 3] [--per-task 300]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import uvloop

from loadtests.cluster_cost import TASKS, drive
from loadtests.replica_pair import ReplicaPair
from omnistock.domain.commands import Adjustment
from omnistock.domain.locations import Location
from omnistock.redis.client import redis_client
from omnistock.redis.multiplex import Multiplexer
from omnistock.redis.replicated import WaitMultiplexer
from omnistock.redis.scripts import Scripts
from omnistock.redis.store import StockStore
from omnistock.redis.streams import ensure_streams

PARTITIONS = 64
MODES = ("no WAIT", "WAIT 1", "WAITAOF 1 1")


async def store_for(url: str, mode: str) -> StockStore:
    """A store on ``url`` whose scripts wait for one replica as ``mode`` says."""
    pool = redis_client(url, TASKS)
    hot = Multiplexer(url)
    if mode != "no WAIT":
        hot.writes = WaitMultiplexer(url, replicas=1, timeout_ms=5000, aof=mode == "WAITAOF 1 1")
    scripts = Scripts.load()
    await scripts.library.load(pool)
    await ensure_streams(pool, PARTITIONS)
    return StockStore(
        pool, hot, scripts, partitions=PARTITIONS, idempotency_ttl_seconds=60, retention_seconds=60
    )


async def stock_up(store: StockStore, prefix: str) -> None:
    locations = [Location(id=f"{prefix}-{i}", name=f"b{i}", kind="store") for i in range(TASKS)]
    await store.put_location_meta(locations)
    await store.adjust(
        [Adjustment(loc.id, "s", 900_000, "receipt") for loc in locations], "b", None
    )


async def measure(
    url: str, rounds: int, per_task: int, modes: tuple[str, ...] = MODES
) -> dict[str, tuple[float, float]]:
    """Median (cpu us/reserve, reservations/s) per mode, rounds interleaved."""
    stores = {mode: await store_for(url, mode) for mode in modes}
    await stock_up(stores["no WAIT"], "wait-cost")
    found: dict[str, list[tuple[float, float]]] = {mode: [] for mode in modes}
    for _ in range(rounds):
        for mode, store in stores.items():
            # WAITAOF waits for the next fsync (appendfsync everysec): about one batch a second
            n = max(2, per_task // 100) if mode == "WAITAOF 1 1" else per_task
            found[mode].append(await drive(store, n, "wait-cost"))
    for store in stores.values():
        await store.hot.aclose()
        await store.client.aclose()
    return {
        mode: (statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs))
        for mode, runs in found.items()
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--per-task", type=int, default=300)
    args = p.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="omnistock-wait-cost-") as base,
        ReplicaPair(Path(base)).running() as pair,
    ):
        found = uvloop.run(measure(pair.url, args.rounds, args.per_task))
    print(f"{'mode':14} {'cpu us/reserve':>14} {'reservations/s':>15} {'ratio':>6}")
    base_rate = found["no WAIT"][1]
    for mode, (cpu, rate) in found.items():
        print(f"{mode:14} {cpu:14.1f} {rate:15,.0f} {rate / base_rate:6.2f}")


if __name__ == "__main__":
    main()
