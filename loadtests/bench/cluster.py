"""Cluster rows (issue 14, DESIGN.md "Redis Cluster"): the real ``omnistock serve`` on a
``redis+cluster://`` URL against a 1-primary and a 3-primary Valkey Cluster of the same
valkey-server binary, beside the bench's standalone stack, rounds interleaved (order reversed every
other round). Around each round: every Valkey node's CPU (INFO cpu) and command stats, and the CPU
of the serving process and of its worker; from them the per-shard Valkey time per reservation and
per read, and the app's CPU per request, which docs/scaling.md's capacity model starts from."""

from __future__ import annotations

import asyncio
import subprocess
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import redis
from redis.crc import key_slot

from loadtests.bench.report import Budget, Row
from loadtests.bench.scenarios import PARTITIONS, Bench, _percentiles
from loadtests.bench.stack import OMNISTOCK
from loadtests.bench.tools import Load, cpu_seconds, median
from omnistock.embedded import die_with_parent, free_port, valkey_binary

SKU = "CL-1"
ORDER_SKUS = ("CL-1", "CL-2", "CL-3")  # a 3-line order, as in docs/scaling.md's example
PER_SHARD = 4  # locations per shard of the 3-primary cluster (the same ones everywhere)
SHARDS = 3


# -- Servers ----------------------------------------------------------------------------------------


class BenchCluster:
    """``primaries`` Valkey Cluster nodes from the embedded binary, configured as the embedded
    standalone one is (AOF, ``appendfsync everysec``, no snapshots, loopback only; no password:
    the cluster lives only for the run). One primary cannot be made by ``valkey-cli --cluster
    create`` (it wants three): it gets every slot with CLUSTER ADDSLOTSRANGE."""

    def __init__(self, base: Path, primaries: int) -> None:
        self.base = base
        self.ports = [free_port() for _ in range(primaries)]
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in self.ports)

    def _cli(self, *args: str) -> str:
        command = [str(valkey_binary().parent / "valkey-cli"), *args]
        return subprocess.run(command, capture_output=True, text=True, check=True).stdout

    def start(self) -> None:
        for n, port in enumerate(self.ports):
            directory = self.base / f"node{n}"
            directory.mkdir(parents=True, exist_ok=True)
            self.procs.append(
                subprocess.Popen(
                    [str(valkey_binary()), "--port", str(port), "--cluster-port", str(free_port()),
                     "--bind", "127.0.0.1", "--dir", str(directory), "--cluster-enabled", "yes",
                     "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
                     "--logfile", str(directory / "valkey.log")],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    preexec_fn=die_with_parent,
                )
            )  # fmt: skip
        for port in self.ports:
            self._wait(port, "ping", "PONG")
        if len(self.ports) == 1:
            self._cli("-p", str(self.ports[0]), "cluster", "addslotsrange", "0", "16383")
        else:
            self._cli(
                "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports), "--cluster-yes"
            )
        for port in self.ports:
            self._wait(port, "cluster info", "cluster_state:ok")

    def _wait(self, port: int, command: str, answer: str) -> None:
        """Until the node at ``port`` answers ``command`` with something holding ``answer``."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if answer in self._cli("-p", str(port), *command.split()):
                    return
            except subprocess.CalledProcessError:
                pass
            time.sleep(0.05)
        raise RuntimeError("a bench cluster node did not become ready in 30 s")

    def owner(self, slot: int) -> int:
        """Index (in :attr:`ports`) of the node that serves ``slot``."""
        for line in self._cli("-p", str(self.ports[0]), "cluster", "nodes").splitlines():
            fields = line.split()
            port = int(fields[1].split("@")[0].rsplit(":", 1)[1])
            for span in fields[8:]:
                start, _, end = span.partition("-")
                if int(start) <= slot <= int(end or start):
                    return self.ports.index(port)
        raise RuntimeError(f"no node serves slot {slot}")

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


@dataclass
class Target:
    """One serving configuration: its ``omnistock serve``, admin key and Valkey nodes."""

    name: str
    url: str
    key: str
    pid: int
    redis_url: str
    nodes: list[redis.Redis]
    shares: list[float]  # of the requests, what goes to each node (set once the locations are)
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.key}"}, timeout=60
        )


def _database(url: str, name: str) -> str:
    """A new database ``name`` on the Postgres of ``url``; its URL."""

    async def create() -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(create())
    return url.rsplit("/", 1)[0] + "/" + name


def _cluster_target(bench: Bench, name: str, cluster: BenchCluster) -> Target:
    """``omnistock serve`` (as the bench's own: same cpus, workers, settings) on ``cluster``, with
    a database of its own on the bench's Postgres (its ledger and keys apart)."""
    env = {
        "OMNISTOCK_REDIS_URL": cluster.url,
        "OMNISTOCK_DATABASE_URL": _database(
            bench.stack.postgres.url, f"omnistock_{name.replace(' ', '_')}"
        ),
    }
    migrate = [OMNISTOCK, "migrate"]
    subprocess.run(migrate, env={**bench.stack.env, **env}, check=True, capture_output=True)
    made = subprocess.run(
        [OMNISTOCK, "keys", "create", "--role", "admin", "bench"],
        env={**bench.stack.env, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    url = bench.stack.serve_another(bench.stack.workers, bench.plan.server_cpus, **env)
    nodes = [redis.Redis(host="127.0.0.1", port=port) for port in cluster.ports]
    pid = bench.stack.processes[-1].pid
    return Target(name, url, made.stdout.strip(), pid, cluster.url, nodes, [1.0])


# -- Measuring --------------------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found += [int(x) for x in task.read_text().split()]
        except OSError:
            continue
    return found


def _worker_cpu(pid: int) -> float:
    """CPU seconds so far of everything ``serve`` started (its worker process)."""
    total, todo = 0.0, _children(pid)
    while todo:
        child = todo.pop()
        total += cpu_seconds(child)
        todo += _children(child)
    return total


@dataclass(frozen=True)
class NodeStats:
    cpu: float  # used_cpu_user + used_cpu_sys, seconds
    calls: int  # of the counted command since the last reset
    usec_per_call: float
    stream_reads: int  # XREAD (the fan-out) and XREADGROUP (the persister) since the last reset


def _node_stats(node: redis.Redis, command: str) -> NodeStats:
    cpu: dict[str, Any] = node.info("cpu")
    every: dict[str, Any] = node.info("commandstats")
    stats: dict[str, Any] = every.get(f"cmdstat_{command}", {})
    return NodeStats(
        float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]),
        int(stats.get("calls", 0)),
        float(stats.get("usec_per_call", 0.0)),
        sum(int(every.get(f"cmdstat_{c}", {}).get("calls", 0)) for c in ("xread", "xreadgroup")),
    )


@dataclass(frozen=True)
class Sample:
    """One round against one target. CPU over the round is a share of one core; CPU per request
    covers the round and the persister's catching up after it (the whole cost of the requests)."""

    load: Load
    app_share: float
    worker_share: float
    app_us: float
    worker_us: float
    node_share: list[float]  # per node, over the round
    node_us: list[float]  # per node: its CPU per request routed to it (round + catch-up)
    node_fcall_us: list[float]  # per node: commandstats usec_per_call of the counted command
    calls_per_request: float  # of the counted command, all nodes together
    stream_reads_per_request: float  # XREAD + XREADGROUP, all nodes together, over the round


def _measure(
    bench: Bench, target: Target, script: str, env: dict[str, str], command: str, status: int
) -> Sample:
    for node in target.nodes:
        node.config_resetstat()
    nodes0 = [_node_stats(n, command) for n in target.nodes]
    app0, worker0, wall0 = cpu_seconds(target.pid), _worker_cpu(target.pid), time.monotonic()
    load = bench.wrk(script, env, url=target.url)
    wall = time.monotonic() - wall0
    app1, worker1 = cpu_seconds(target.pid), _worker_cpu(target.pid)
    nodes1 = [_node_stats(n, command) for n in target.nodes]
    if set(load.statuses) != {status}:
        raise RuntimeError(f"{target.name} {script} round answered {load.statuses}")
    bench.settle(target.redis_url)
    app2, worker2 = cpu_seconds(target.pid), _worker_cpu(target.pid)
    nodes2 = [_node_stats(n, command) for n in target.nodes]
    n = load.requests
    return Sample(
        load,
        (app1 - app0) / wall,
        (worker1 - worker0) / wall,
        (app2 - app0) / n * 1e6,
        (worker2 - worker0) / n * 1e6,
        [(b.cpu - a.cpu) / wall for a, b in zip(nodes0, nodes1, strict=True)],
        [
            (c.cpu - a.cpu) / (n * share) * 1e6
            for a, c, share in zip(nodes0, nodes2, target.shares, strict=True)
        ],
        [b.usec_per_call for b in nodes1],
        sum(b.calls for b in nodes1) / n,
        sum(b.stream_reads for b in nodes1) / n,
    )


# -- The scenario -----------------------------------------------------------------------------------


def _locations(three: BenchCluster) -> list[str]:
    """Location ids, :data:`PER_SHARD` on each primary of the 3-primary cluster (interleaved
    shard by shard, so the load's rotation visits the shards in turn and each gets a third)."""
    by_shard: list[list[str]] = [[] for _ in three.ports]
    n = 0
    while min(len(x) for x in by_shard) < PER_SHARD:
        location = f"cl-{n}"
        partition = zlib.crc32(location.encode()) % PARTITIONS  # domain.ids.partition_of
        shard = by_shard[three.owner(key_slot(f"p{partition}".encode()))]
        if len(shard) < PER_SHARD:
            shard.append(location)
        n += 1
    return [loc for group in zip(*by_shard, strict=True) for loc in group]


def _prepare(target: Target, locations: list[str]) -> None:
    for location in locations:
        put = target.http.put(f"/v1/locations/{location}", json={"name": location, "kind": "store"})
        put.raise_for_status()
    items = [
        {"location": loc, "sku": sku, "delta": 10**9, "reason": "receipt"}
        for loc in locations
        for sku in ORDER_SKUS
    ]
    target.http.post("/v1/adjustments", json={"adjustments": items}).raise_for_status()


def cluster(bench: Bench) -> None:
    """Reservations/s and reads/s over 12 locations (4 per shard of the 3-primary cluster) on the
    standalone stack, a 1-primary and a 3-primary cluster, interleaved; per-shard Valkey CPU and
    time per request, and the app's CPU per request."""
    plan = bench.plan
    clusters = {
        "1 primary": BenchCluster(bench.stack.base / "cluster1", 1),
        "3 primaries": BenchCluster(bench.stack.base / "cluster3", SHARDS),
    }
    started: list[subprocess.Popen[bytes]] = []
    targets: list[Target] = []
    try:
        for found in clusters.values():
            found.start()
        standalone = redis.Redis.from_url(bench.stack.valkey.url)
        targets.append(
            Target(
                "standalone",
                bench.url,
                bench.key,
                bench.stack.serve_pid,
                bench.stack.valkey.url,
                [standalone],
                [1.0],
            )
        )
        for name, found in clusters.items():
            targets.append(_cluster_target(bench, name, found))
            started.append(bench.stack.processes[-1])
        three = targets[-1]
        three.shares = [1 / SHARDS] * SHARDS
        locations = _locations(clusters["3 primaries"])
        for target in targets:
            _prepare(target, locations)
            bench.settle(target.redis_url)
        reserve_env = {
            "RESERVE_LOCATION": ",".join(locations),
            "RESERVE_SKU": SKU,
            "RESERVE_TTL": "3600",
        }
        paths = " ".join(f"/v1/availability/{SKU}?location={loc}" for loc in locations)
        samples: dict[str, dict[str, list[Sample]]] = {
            kind: {t.name: [] for t in targets} for kind in ("reserve", "read", "order")
        }
        for n in range(plan.rounds):
            order = targets if n % 2 == 0 else targets[::-1]
            for target in order:
                env = {**reserve_env, "RESERVE_KEY": target.key}
                sample = _measure(bench, target, "reserve", env, "fcall", 201)
                samples["reserve"][target.name].append(sample)
            for target in order:
                env = {"REQUEST_PATH": paths, "REQUEST_KEY": target.key}
                sample = _measure(bench, target, "request", env, "hmget", 200)
                samples["read"][target.name].append(sample)
            # 3-line orders on the 3-primary cluster: what the capacity model's orders cost.
            env = {**reserve_env, "RESERVE_SKU": ",".join(ORDER_SKUS), "RESERVE_KEY": three.key}
            samples["order"][three.name].append(
                _measure(bench, three, "reserve", env, "fcall", 201)
            )
    finally:
        for proc in started:
            bench.stack.retire(proc)
        for found in clusters.values():
            found.stop()
    for kind in ("reserve", "read"):
        for row in _rows(bench, kind, samples[kind], len(locations)):
            bench.add(row)
    bench.add(_order_row(bench, samples["order"][three.name], samples["reserve"][three.name]))


def _pinning(bench: Bench) -> str:
    cpus = bench.plan.server_cpus
    if not cpus:
        return "nothing pinned"
    return (
        f"each omnistock serve (and its worker) pinned to cpu {cpus}, wrk to cpu "
        f"{bench.plan.load_cpus}; the Valkey nodes unpinned, as the standalone stack's Valkey "
        "(and Postgres) are"
    )


def _med(samples: list[Sample], pick: Callable[[Sample], float]) -> float:
    return median([pick(s) for s in samples])


def _shards(samples: list[Sample], pick: Callable[[Sample], list[float]], fmt: str) -> str:
    count = len(pick(samples[0]))
    return "/".join(fmt.format(median([pick(s)[i] for s in samples])) for i in range(count))


def _rows(bench: Bench, kind: str, found: dict[str, list[Sample]], locations: int) -> list[Row]:
    plan = bench.plan
    single, one, three = found["standalone"], found["1 primary"], found["3 primaries"]
    noun = "reservations" if kind == "reserve" else "reads"
    what = (
        f"POST /v1/reservations of 1 unit, 1 line, rotating over {locations} locations"
        if kind == "reserve"
        else f"GET /v1/availability/{{sku}}?location=L rotating over {locations} locations"
    )
    counted = "FCALL" if kind == "reserve" else "HMGET"
    common = (
        f"{what} ({PER_SHARD} per shard of the 3-primary cluster), {plan.connections} "
        f"connections, medians of {plan.rounds} rounds interleaved (order reversed every other "
        f"round); {_pinning(bench)}"
    )

    def valkey(samples: list[Sample]) -> str:
        return (
            f"Valkey CPU {_shards(samples, lambda s: s.node_share, '{:.0%}')} of a core, "
            f"{_shards(samples, lambda s: s.node_us, '{:.1f}')} us per request it served, "
            f"{_med(samples, lambda s: s.stream_reads_per_request):.2f} stream reads "
            "(XREAD + XREADGROUP) per request"
        )

    def app(samples: list[Sample]) -> str:
        return (
            f"serve {_med(samples, lambda s: s.app_share):.0%} + worker "
            f"{_med(samples, lambda s: s.worker_share):.0%} of a core, "
            f"{_med(samples, lambda s: s.app_us):.0f} + {_med(samples, lambda s: s.worker_us):.0f}"
            f" us per request"
        )

    cpu_ratio = _med(single, lambda s: s.app_us + s.worker_us) / _med(
        one, lambda s: s.app_us + s.worker_us
    )
    rows = [
        Row(
            "Cluster 1 primary vs standalone",
            f"{noun}/s through HTTP",
            _med(one, lambda s: s.load.rps),
            "req/s",
            baseline=_med(single, lambda s: s.load.rps),
            baseline_name="standalone",
            budget=Budget("ratio", ">=", 0.85) if kind == "reserve" else None,
            note=(
                f"omnistock serve with OMNISTOCK_REDIS_URL=redis+cluster:// to a 1-primary "
                f"cluster (every slot on one node; AOF everysec as the standalone) vs the "
                f"standalone stack; {common}; cluster: {valkey(one)}, {app(one)}, "
                f"{_percentiles([s.load for s in one])}; standalone: {valkey(single)}, "
                f"{app(single)}, {_percentiles([s.load for s in single])}; app CPU per "
                f"request (serve + worker) standalone / cluster: {cpu_ratio:.2f} (the ratio "
                f"where the app's core is the limit, steadier than the rates on a shared box)"
            ),
        ),
        Row(
            "Cluster 3 primaries",
            f"{noun}/s",
            _med(three, lambda s: s.load.rps),
            "req/s",
            baseline=_med(one, lambda s: s.load.rps),
            baseline_name="1 primary",
            note=(
                f"{common}; per shard: {valkey(three)} (commandstats usec_per_call "
                f"{_shards(three, lambda s: s.node_fcall_us, '{:.1f}')}); {app(three)}; "
                f"{_percentiles([s.load for s in three])}; on 2 cores one Python serve process "
                f"is the limit, so no linear scaling can show here (docs/scaling.md extrapolates "
                f"from per-shard cost)"
            ),
        ),
    ]
    shard_us = [median([s.node_us[i] for s in three]) for i in range(SHARDS)]
    rows.append(
        Row(
            "Cluster 3 primaries",
            f"Valkey time per {'reserve' if kind == 'reserve' else 'read'}, per shard",
            median(shard_us),
            "us",
            note=(
                f"each shard's CPU (INFO cpu used_cpu_user+sys, over the round and the "
                f"persister's catch-up after it) per request routed to it (a third each): "
                f"{'/'.join(f'{x:.1f}' for x in shard_us)} us (median shard shown; includes the "
                f"stream reads of the persister and the fan-out, the acks, the network); the "
                f"{counted}s alone (commandstats usec_per_call: wall time, any {counted} of the "
                f"service, mostly the request's own): "
                f"{_shards(three, lambda s: s.node_fcall_us, '{:.1f}')} us, "
                f"{_med(three, lambda s: s.calls_per_request):.2f} {counted} per request; "
                f"1 primary: "
                f"{_shards(one, lambda s: s.node_us, '{:.1f}')} us, standalone "
                f"{_shards(single, lambda s: s.node_us, '{:.1f}')} us"
            ),
        )
    )
    rows.append(
        Row(
            "Cluster 3 primaries",
            f"app CPU per {'reservation' if kind == 'reserve' else 'read'}",
            _med(three, lambda s: s.app_us),
            "us",
            note=(
                f"CPU of the serving process (utime+stime, every thread, round and catch-up) "
                f"per request; its worker process (persister, expiry, trimming) another "
                f"{_med(three, lambda s: s.worker_us):.0f} us; 1 primary "
                f"{_med(one, lambda s: s.app_us):.0f} + {_med(one, lambda s: s.worker_us):.0f} "
                f"us, standalone {_med(single, lambda s: s.app_us):.0f} + "
                f"{_med(single, lambda s: s.worker_us):.0f} us"
            ),
        )
    )
    return rows


def _order_row(bench: Bench, orders: list[Sample], singles: list[Sample]) -> Row:
    """Per-shard Valkey time of a 3-line reservation, beside the 1-line one of the same rounds."""
    shard_us = [median([s.node_us[i] for s in orders]) for i in range(SHARDS)]
    single_us = median([median([s.node_us[i] for s in singles]) for i in range(SHARDS)])
    return Row(
        "Cluster 3 primaries",
        "Valkey time per 3-line reserve, per shard",
        median(shard_us),
        "us",
        baseline=single_us,
        baseline_name="1-line",
        note=(
            f"POST /v1/reservations of 3 lines ({', '.join(ORDER_SKUS)}, 1 unit each) rotating "
            f"over the same locations on the 3-primary cluster, right after the 1-line rounds: "
            f"{_med(orders, lambda s: s.load.rps):,.0f} req/s; each shard's CPU per request "
            f"routed to it {'/'.join(f'{x:.1f}' for x in shard_us)} us (FCALL usec_per_call "
            f"{_shards(orders, lambda s: s.node_fcall_us, '{:.1f}')}); app CPU per request: "
            f"serve {_med(orders, lambda s: s.app_us):.0f} + worker "
            f"{_med(orders, lambda s: s.worker_us):.0f} us; {_percentiles([s.load for s in orders])}"
        ),
    )
