"""Reservations/s on the request path: standalone Valkey against a 1-primary Valkey Cluster (the
same binary), through the same store code (``StockStore.reserve`` on the hot path: one pipelined
connection, or one per primary routed by slot). 64 tasks reserve 1 unit each at 64 locations;
rounds alternate; medians printed with this process's CPU per reservation.

    python -m loadtests.cluster_cost [--rounds 3] [--per-task 300]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop

from omnistock.domain.commands import Adjustment
from omnistock.domain.ids import new_reservation_id
from omnistock.domain.locations import Location
from omnistock.embedded import EmbeddedValkey, free_port, valkey_binary
from omnistock.redis.client import any_client
from omnistock.redis.cluster import ClusterMultiplexer
from omnistock.redis.multiplex import Multiplexer
from omnistock.redis.scripts import Scripts
from omnistock.redis.store import StockStore
from omnistock.redis.streams import ensure_streams

TASKS = 64
PARTITIONS = 64


def start_one_primary_cluster(base: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A cluster of one primary holding every slot (valkey-cli --cluster create needs three)."""
    port, bus = free_port(), free_port()
    base.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [str(valkey_binary()), "--port", str(port), "--cluster-port", str(bus),
         "--bind", "127.0.0.1", "--dir", str(base), "--cluster-enabled", "yes",
         "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
         "--logfile", str(base / "valkey.log")],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    cli = [str(valkey_binary().parent / "valkey-cli"), "-p", str(port)]
    for _ in range(200):
        if subprocess.run([*cli, "ping"], capture_output=True, check=False).returncode == 0:
            break
        time.sleep(0.05)
    subprocess.run(
        [*cli, "cluster", "addslotsrange", "0", "16383"], check=True, capture_output=True
    )
    for _ in range(200):
        info = subprocess.run([*cli, "cluster", "info"], capture_output=True, check=True).stdout
        if b"cluster_state:ok" in info:
            break
        time.sleep(0.05)
    return proc, f"redis+cluster://127.0.0.1:{port}"


async def _store(url: str) -> StockStore:
    pool = any_client(url, TASKS)
    hot = ClusterMultiplexer(url) if url.startswith("redis+cluster") else Multiplexer(url)
    scripts = Scripts.load()
    await scripts.library.load(pool)
    await ensure_streams(pool, PARTITIONS)
    store = StockStore(
        pool, hot, scripts, partitions=PARTITIONS, idempotency_ttl_seconds=60, retention_seconds=60
    )
    locations = [Location(id=f"bench-{i}", name=f"b{i}", kind="store") for i in range(TASKS)]
    await store.put_location_meta(locations)
    await store.adjust(
        [Adjustment(loc.id, "s", 900_000, "receipt") for loc in locations], "b", None
    )
    return store


async def drive(store: StockStore, per_task: int, prefix: str = "bench") -> tuple[float, float]:
    """(us of this process's CPU per reservation, reservations/s): TASKS tasks reserve 1 unit
    each at their own location ``<prefix>-<i>``, ``per_task`` times."""

    async def task(i: int) -> None:
        loc = f"{prefix}-{i}"
        p = store.partition(loc)
        for _ in range(per_task):
            await store.reserve(
                reservation_id=new_reservation_id(p), location=loc, lines=[("s", 1)],
                ttl_seconds=600, channel="web", ref="", allow_partial=False, actor="b", idem=None,
            )  # fmt: skip

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(task(i) for i in range(TASKS)))
    n = TASKS * per_task
    return (time.process_time() - cpu) / n * 1e6, n / (time.perf_counter() - wall)


async def _main(urls: dict[str, str], rounds: int, per_task: int) -> None:
    stores = {name: await _store(url) for name, url in urls.items()}
    found: dict[str, list[tuple[float, float]]] = {name: [] for name in stores}
    for _ in range(rounds):
        for name, store in stores.items():
            found[name].append(await drive(store, per_task))
    print(f"{'redis':24} {'cpu us/reserve':>14} {'reservations/s':>15}")
    rates: dict[str, float] = {}
    for name, runs in found.items():
        cpu = statistics.median(r[0] for r in runs)
        rates[name] = statistics.median(r[1] for r in runs)
        print(f"{name:24} {cpu:14.1f} {rates[name]:15,.0f}")
    standalone, cluster = rates["standalone"], rates["cluster, 1 primary"]
    print(f"cluster/standalone: {cluster / standalone:.2f}")
    for store in stores.values():
        await store.hot.aclose()
        await store.client.aclose()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--per-task", type=int, default=300)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="omnistock-cluster-cost-") as base:
        valkey = EmbeddedValkey(Path(base) / "standalone")
        valkey.start()
        proc, cluster_url = start_one_primary_cluster(Path(base) / "cluster")
        try:
            urls: dict[str, Any] = {"standalone": valkey.url, "cluster, 1 primary": cluster_url}
            uvloop.run(_main(urls, args.rounds, args.per_task))
        finally:
            proc.terminate()
            proc.wait()
            valkey.stop()


if __name__ == "__main__":
    main()
