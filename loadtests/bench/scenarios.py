"""The scenarios. Each runs its rounds, its baseline in the same run (interleaved round by round
where both share the machine), and adds its rows and latencies to the results."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import redis
import redis.asyncio as aredis

from loadtests.bench.report import Budget, Latency, Results, Row
from loadtests.bench.stack import Stack, pinned
from loadtests.bench.tools import (
    Load,
    PacedLoad,
    cpu_wait_seconds,
    median,
    move_tree,
    redis_benchmark,
    restore_affinity,
    run_paced,
    run_wrk,
)
from omnistock.domain.commands import Count
from omnistock.domain.locations import Location
from omnistock.embedded import EmbeddedValkey
from omnistock.redis.client import any_client
from omnistock.redis.multiplex import Multiplexer
from omnistock.redis.scripts import Scripts
from omnistock.redis.store import StockStore
from omnistock.redis.streams import backlog, ensure_streams

PARTITIONS = 64  # omnistock's default
ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Plan:
    """How long and where: rounds per scenario, seconds per load round, cpu pinning."""

    rounds: int
    seconds: float
    connections: int
    server_cpus: str | None
    load_cpus: str | None
    script_calls: int
    ws_rounds: int
    ws_changes: int
    persistence_rounds: int
    positions: int


class Bench:
    """A running omnistock (and its baseline) with an admin key and the results so far."""

    def __init__(self, stack: Stack, url: str, key: str, plan: Plan) -> None:
        self.stack, self.url, self.key, self.plan = stack, url, key, plan
        self.http = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60
        )
        self.results = Results()

    def wrk(
        self, script: str, env: dict[str, str], url: str | None = None, connections: int = 0
    ) -> Load:
        """One wrk round against omnistock (or ``url``), on the load cpus."""
        return run_wrk(
            url or self.url,
            script,
            seconds=self.plan.seconds,
            connections=connections or self.plan.connections,
            cpus=self.plan.load_cpus,
            env=env,
        )

    def ok(self, response: httpx.Response) -> Any:
        if response.is_error:
            raise RuntimeError(f"{response.request.url}: {response.status_code} {response.text}")
        return response.json()

    def location(self, location: str) -> None:
        self.ok(
            self.http.put(f"/v1/locations/{location}", json={"name": location, "kind": "store"})
        )

    def receive(self, location: str, skus: list[str], qty: int) -> None:
        items = [
            {"location": location, "sku": sku, "delta": qty, "reason": "receipt"} for sku in skus
        ]
        self.ok(self.http.post("/v1/adjustments", json={"adjustments": items}))

    def settle(self, redis_url: str | None = None) -> None:
        """Wait until the persister has caught up, so one scenario's writes do not load the next:
        on the stack's Valkey, or on ``redis_url`` (a cluster's too)."""

        async def wait() -> None:
            client = any_client(redis_url or self.stack.valkey.url, 8)
            try:
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline:
                    if not await backlog(client, PARTITIONS):
                        return
                    await asyncio.sleep(0.2)
                raise RuntimeError("the persister did not catch up within 120 s")
            finally:
                await client.aclose()

        asyncio.run(wait())

    def fcall_stats(self, client: redis.Redis) -> float:
        """Redis microseconds per FCALL (a script call) since the last reset."""
        stats: dict[str, Any] = client.info("commandstats")
        return float(stats.get("cmdstat_fcall", {}).get("usec_per_call", 0.0))

    def add(self, row: Row) -> None:
        self.results.rows.append(row)

    def latency(self, label: str, loads: Sequence[Load | PacedLoad]) -> None:
        self.results.latencies.append(
            Latency(
                label,
                median([x.p50_ms for x in loads]),
                median([x.p90_ms for x in loads]),
                median([x.p99_ms for x in loads]),
            )
        )


def _percentiles(loads: list[Load]) -> str:
    p50 = median([x.p50_ms for x in loads])
    p99 = median([x.p99_ms for x in loads])
    cpu = max(x.generator_cpu for x in loads)
    return f"p50 {p50:.2f} ms, p99 {p99:.2f} ms; wrk used at most {cpu:.0%} of a core"


# -- Lua cost and HTTP reservations -----------------------------------------------------------------


async def _raw_reserve_command(url: str) -> list[str]:
    """Prepare a hot sku on a Valkey of its own; the FCALL command omnistock sends to hold one
    unit of it (with ``__rand_int__`` making each reservation id new)."""
    client = aredis.Redis.from_url(url)
    hot = Multiplexer(url)
    try:
        scripts = Scripts.load()
        store = StockStore(
            client,
            hot,
            scripts,
            partitions=PARTITIONS,
            idempotency_ttl_seconds=3600,
            retention_seconds=3600,
        )
        await ensure_streams(client, PARTITIONS)
        await store.put_location_meta([Location(id="raw-store", name="raw", kind="store")])
        await store.set_counts([Count("raw-store", "HOT-1", 10**12)], "bench", None)
        await scripts.library.load(client)
        keys, args = store.reserve_call(
            reservation_id="bench-__rand_int__",
            location="raw-store",
            lines=[("HOT-1", 1)],
            ttl_seconds=3600,
            channel="web",
            ref=None,
            allow_partial=False,
            actor="bench",
            idem=None,
        )
        return ["FCALL", scripts.reserve.function, str(len(keys)), *keys, *map(str, args)]
    finally:
        await hot.aclose()
        await client.aclose()


def reservations(bench: Bench) -> None:
    """Raw FCALL/s of reserve.lua (redis-benchmark, pipelined) and Redis time per call, against
    HTTP reservations/s through omnistock, round by round."""
    plan = bench.plan
    raw = EmbeddedValkey(bench.stack.base / "raw-valkey")
    raw.start()
    if plan.server_cpus and raw.proc is not None:
        # Off redis-benchmark's core: commandstats times are wall clock, and a Valkey sharing the
        # generator's core would be charged for the generator's turns.
        os.sched_setaffinity(raw.proc.pid, {int(c) for c in plan.server_cpus.split(",")})
    try:
        command = asyncio.run(_raw_reserve_command(raw.url))
        raw_client = redis.Redis.from_url(raw.url)
        app_client = redis.Redis.from_url(bench.stack.valkey.url)
        bench.location("bench-store")
        bench.receive("bench-store", ["HOT-1"], 10**9)
        bench.settle()
        env = {
            "RESERVE_LOCATION": "bench-store",
            "RESERVE_SKU": "HOT-1",
            "RESERVE_KEY": bench.key,
            "RESERVE_TTL": "3600",
        }
        raw_rps, raw_usec, raw_cpu, app_usec, loads = [], [], [], [], []
        for _ in range(plan.rounds):
            raw_client.config_resetstat()
            rps, cpu = redis_benchmark(
                raw.port,
                command,
                requests=plan.script_calls,
                pipeline=16,
                cpus=plan.load_cpus,
                password=raw.password,
            )
            raw_rps.append(rps)
            raw_cpu.append(cpu)
            raw_usec.append(bench.fcall_stats(raw_client))
            app_client.config_resetstat()
            load = bench.wrk("reserve", env)
            if set(load.statuses) != {201}:
                raise RuntimeError(f"reserve round answered {load.statuses}")
            loads.append(load)
            app_usec.append(bench.fcall_stats(app_client))
            bench.settle()
        raw_client.close()
        app_client.close()
    finally:
        raw.stop()
    raw_calls = median(raw_rps)
    bench.add(
        Row(
            "Lua cost",
            "Redis time per reserve call",
            median(raw_usec),
            "us",
            budget=Budget("value", "<=", 10),
            note=(
                f"INFO commandstats usec_per_call of FCALL reserve (1 line) under "
                f"redis-benchmark; inside the running service (all scripts): "
                f"{median(app_usec):.1f} us"
            ),
        )
    )
    bench.add(
        Row(
            "Lua cost",
            "raw FCALL reserve/s",
            raw_calls,
            "calls/s",
            note=(
                f"redis-benchmark -c 50 -P 16 -n {plan.script_calls:,} on a Valkey of its "
                f"own; the generator used {max(raw_cpu):.0%} of a core"
            ),
        )
    )
    bench.add(
        Row(
            "HTTP reservations",
            "reservations/s",
            median([x.rps for x in loads]),
            "req/s",
            baseline=raw_calls,
            baseline_name="raw FCALL/s",
            budget=Budget("ratio", ">=", 0.15),
            note=f"POST /v1/reservations, 1 line, {plan.connections} connections; "
            + _percentiles(loads),
        )
    )
    bench.latency("reserve (HTTP)", loads)


# -- Reads ------------------------------------------------------------------------------------------


def reads(bench: Bench) -> None:
    """Single-position availability reads against the app's hello-world route, interleaved."""
    plan = bench.plan
    avail_env = {
        "REQUEST_PATH": "/v1/availability/HOT-1?location=bench-store",
        "REQUEST_KEY": bench.key,
    }
    hello, avail = [], []
    for _ in range(plan.rounds):
        hello.append(bench.wrk("request", {"REQUEST_PATH": "/healthz"}))
        avail.append(bench.wrk("request", avail_env))
    for load in [*hello, *avail]:
        if set(load.statuses) != {200}:
            raise RuntimeError(f"read round answered {load.statuses}")
    bench.add(
        Row(
            "Availability read",
            "reads/s",
            median([x.rps for x in avail]),
            "req/s",
            baseline=median([x.rps for x in hello]),
            baseline_name="hello-world/s",
            budget=Budget("ratio", ">=", 0.5),
            note="GET /v1/availability/{sku}?location=L (authenticated) vs GET /healthz of the "
            "same app and server, interleaved; " + _percentiles(avail),
        )
    )
    bench.latency("availability read", avail)
    bench.latency("hello world", hello)


# A policy no bench load reaches (a burst of 17 million) whose rate (200/s) is low enough that
# every request is counted in Redis by itself (a lease of 1): the limiter's worst case.
PER_REQUEST_LIMITS = ",".join(
    f"{role}=17000000/86400s" for role in ("admin", "integration", "store", "storefront", "feed")
)


def rate_limit_cost(bench: Bench) -> None:
    """Availability reads/s with rate limits on (the bench's server: limits out of reach, so
    busy keys take leases of 100 from Redis), on a server whose policy makes every request a
    call of ratelimit.lua, and on one with limits off; same cpus and data, interleaved."""
    plan = bench.plan
    bench.location("limit-store")
    bench.receive("limit-store", ["LIM-1"], 1000)
    bench.settle()
    workers, cpus = bench.stack.workers, plan.server_cpus
    others = {
        "per-request": bench.stack.serve_another(
            workers, cpus, OMNISTOCK_RATE_LIMITS=PER_REQUEST_LIMITS
        ),
        "off": bench.stack.serve_another(workers, cpus, OMNISTOCK_RATE_LIMITS="off"),
    }
    procs = bench.stack.processes[-2:]
    path = "/v1/availability/LIM-1?location=limit-store"
    loads: dict[str, list[Load]] = {"on": [], "per-request": [], "off": []}
    try:
        urls = {"on": bench.url, **others}
        # A key of its own there: the two policies must not share one key's state in Redis.
        own_key = bench.stack.omnistock("keys", "create", "--role", "admin", "bench-per-request")
        keys = {"on": bench.key, "per-request": own_key, "off": bench.key}
        for name, url in urls.items():
            auth = {"Authorization": f"Bearer {keys[name]}"}
            limited = "ratelimit" in httpx.get(url + path, headers=auth).headers
            if limited != (name != "off"):
                raise RuntimeError(f"rate limits of the {name!r} server are not as configured")
        order = list(urls)
        for n in range(plan.rounds):
            # Reversed every other round: no configuration always follows the same one.
            for name in order if n % 2 == 0 else order[::-1]:
                env = {"REQUEST_PATH": path, "REQUEST_KEY": keys[name]}
                loads[name].append(bench.wrk("request", env, url=urls[name]))
    finally:
        for proc in procs:
            bench.stack.retire(proc)
    for load in [x for runs in loads.values() for x in runs]:
        if set(load.statuses) != {200}:
            raise RuntimeError(f"rate limit cost round answered {load.statuses}")
    off = median([x.rps for x in loads["off"]])
    common = (
        "GET /v1/availability/{sku}?location=L vs a server with OMNISTOCK_RATE_LIMITS=off, same "
        "cpus, rounds interleaved (order reversed every other round); "
    )
    bench.add(
        Row(
            "Rate limit cost",
            "reads/s, limits on",
            median([x.rps for x in loads["on"]]),
            "req/s",
            baseline=off,
            baseline_name="limits off",
            budget=Budget("ratio", ">=", 0.9),
            note=common
            + "limits out of reach (10^9/1s: one key takes leases of 100 from Redis); on: "
            + _percentiles(loads["on"])
            + "; off: "
            + _percentiles(loads["off"]),
        )
    )
    bench.add(
        Row(
            "Rate limit cost",
            "reads/s, ratelimit.lua per request",
            median([x.rps for x in loads["per-request"]]),
            "req/s",
            baseline=off,
            baseline_name="limits off",
            note=common
            + "a policy of 200/s with a 17M burst, so every request is one FCALL of "
            + "ratelimit.lua, as for keys under 200/s (leases of 1); no budget: no single key "
            + "sends this much under such a policy, many keys of low rates together may; "
            + _percentiles(loads["per-request"]),
        )
    )


def batch_reads(bench: Bench) -> None:
    """Batch availability: 50 skus x 10 stores per request."""
    plan = bench.plan
    locations = [f"batch-{n}" for n in range(10)]
    skus = [f"B-{n:03d}" for n in range(50)]
    for n, location in enumerate(locations):
        bench.location(location)
        bench.receive(location, skus, n + 1)
    bench.settle()
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump({"skus": skus, "locations": locations}, f)
    env = {
        "REQUEST_METHOD": "POST",
        "REQUEST_PATH": "/v1/availability",
        "REQUEST_BODY_FILE": f.name,
        "REQUEST_KEY": bench.key,
    }
    loads = [bench.wrk("request", env, connections=16) for _ in range(plan.rounds)]
    Path(f.name).unlink()
    for load in loads:
        if set(load.statuses) != {200}:
            raise RuntimeError(f"batch round answered {load.statuses}")
    cells = len(skus) * len(locations)
    bench.add(
        Row(
            "Batch availability",
            "cells/s",
            median([x.rps for x in loads]) * cells,
            "cells/s",
            note=f"POST /v1/availability, 50 skus x 10 stores ({cells} cells) per request, "
            "16 connections; " + _percentiles(loads),
        )
    )
    bench.latency("batch 50x10", loads)


# -- Flash sale -------------------------------------------------------------------------------------

UNITS = 10_000
BUYERS = 200


class SoldOut(threading.Thread):
    """Polls a position until nothing is available; ``at`` is when (seconds from start)."""

    def __init__(self, url: str, path: str, headers: dict[str, str], give_up: float) -> None:
        super().__init__(daemon=True)
        self.url, self.path, self.headers, self.give_up = url, path, headers, give_up
        self.at: float | None = None

    def run(self) -> None:
        start = time.monotonic()
        with httpx.Client(base_url=self.url, headers=self.headers, timeout=10) as http:
            while (elapsed := time.monotonic() - start) < self.give_up:
                if http.get(self.path).json()["available"] == 0:
                    self.at = elapsed
                    return
                time.sleep(0.02)


@dataclass(frozen=True)
class Sale:
    held: int
    held_per_s: float
    sold_out_s: float | None
    oversold: bool
    load: Load


def _sale(bench: Bench, url: str, location: str, sku: str, key: str | None) -> Sale:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    watch = SoldOut(url, f"/v1/stock/{location}/{sku}", headers, bench.plan.seconds)
    env = {"RESERVE_LOCATION": location, "RESERVE_SKU": sku, "RESERVE_TTL": "3600"}
    if key:
        env["RESERVE_KEY"] = key
    watch.start()
    load = bench.wrk("reserve", env, url=url, connections=BUYERS)
    watch.join()
    position = httpx.get(f"{url}/v1/stock/{location}/{sku}", headers=headers).json()
    held = position["reserved"]
    answered = load.statuses.get(201, 0)
    unexpected = set(load.statuses) - {201, 409}
    if unexpected:
        raise RuntimeError(f"flash sale at {url} answered {load.statuses}")
    oversold = held > UNITS or position["on_hand"] != UNITS or answered > held
    window = watch.at if watch.at is not None else load.seconds
    return Sale(held, held / window, watch.at, oversold, load)


def flash_sale(bench: Bench) -> None:
    """10,000 units of one sku, 200 concurrent buyers: omnistock vs the Postgres row-lock baseline,
    alternating round by round. Units held per second until sold out (or the round's end)."""
    plan = bench.plan
    baseline_url = bench.stack.serve_baseline(1, plan.server_cpus)
    baseline_proc = bench.stack.processes[-1]  # retired at the end: it shares the server's core
    rowlock = [sys.executable, "-m", "loadtests.baselines.pg_rowlock"]
    db = ["--database-url", bench.stack.postgres.url]
    bench.location("flash-store")
    ours, theirs = [], []
    try:
        for n in range(plan.rounds):
            sku = f"FLASH-{n}"
            bench.receive("flash-store", [sku], UNITS)
            bench.settle()
            ours.append(_sale(bench, bench.url, "flash-store", sku, bench.key))
            seed = [*rowlock, "seed", *db, "--location", "flash-store", "--sku", sku]
            subprocess.run([*seed, "--on-hand", str(UNITS)], check=True, capture_output=True)
            sale = _sale(bench, baseline_url, "flash-store", sku, None)
            check = [*rowlock, "check", *db, "--location", "flash-store", "--sku", sku]
            audit = subprocess.run(check, capture_output=True, check=False)
            theirs.append(replace(sale, oversold=sale.oversold or bool(audit.returncode)))
            bench.settle()
    finally:
        bench.stack.retire(baseline_proc)
    oversold = any(s.oversold for s in [*ours, *theirs])
    sold_out = [s.sold_out_s for s in ours if s.sold_out_s is not None]
    ours_held = f"omnistock held {median([s.held for s in ours]):,.0f} units" + (
        f" (sold out in {median(sold_out):.2f} s)" if sold_out else ""
    )
    bench.add(
        Row(
            "Flash sale",
            "units held/s",
            median([s.held_per_s for s in ours]),
            "units/s",
            baseline=median([s.held_per_s for s in theirs]),
            baseline_name="Postgres row lock",
            budget=Budget("ratio", ">=", 10),
            holds=not oversold,
            note=(
                f"{UNITS:,} units, {BUYERS} connections of 1-unit reservations, {plan.seconds:g} s "
                f"rounds (medians): {ours_held}, the baseline "
                f"{median([s.held for s in theirs]):,.0f}; oversold: "
                f"{'YES' if oversold else 'none'} (checked on both servers); omnistock "
                + _percentiles([s.load for s in ours])
            ),
        )
    )
    bench.latency("flash sale omnistock", [s.load for s in ours])
    bench.latency("flash sale PG row lock", [s.load for s in theirs])


# -- WebSocket delivery -----------------------------------------------------------------------------


# "Memory flat with frozen clients": what the server holds for them is bounded by their distinct
# positions (conflation), so the changes they miss must not add to it. Missing 10,000 more changes
# without conflation would hold 100,000 more messages, ~40 MB at the ~420 bytes a held message
# takes (the flood's 50,000 add ~21 MB); the frozen phase of a healthy run moves 0-0.8 MB on a
# ~160 MB server.
WS_FROZEN_RSS_GROWTH_MB = 8.0


def websocket(bench: Bench) -> None:
    """Change -> client latency with 1,000 subscribers, then with 1% of them frozen; and the
    server's memory over the frozen phase."""
    plan = bench.plan
    phases: dict[str, list[dict[str, float]]] = {"plain": [], "frozen": [], "flood": []}
    for _ in range(plan.ws_rounds):
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            command = [
                sys.executable,
                str(ROOT / "loadtests" / "ws_latency.py"),
                *("--url", bench.url, "--key", bench.key, "--json", out.name),
                *("--changes", str(plan.ws_changes), "--rate", "50"),
                *("--server-pid", str(bench.stack.serve_pid)),
            ]
            done = subprocess.run(
                pinned(plan.load_cpus, command), capture_output=True, text=True, check=False
            )
            if done.returncode:
                raise RuntimeError(f"ws_latency failed: {done.stdout}{done.stderr}")
            found = json.loads(Path(out.name).read_text())
        for name in phases:
            phases[name].append(found[name])
        bench.settle()

    def med(phase: str, field: str) -> float:
        return median([x[field] for x in phases[phase]])

    for phase, label in (("plain", "1,000 subscribers"), ("frozen", "1,000 + 1% frozen")):
        complete = all(x["deliveries"] == x["expected"] for x in phases[phase])
        pending = med(phase, "server_pending_messages")
        bench.add(
            Row(
                "WebSocket delivery",
                f"p99, {label}",
                med(phase, "p99_ms"),
                "ms",
                budget=Budget("value", "<", 50),
                holds=complete,
                note=(
                    f"{label}: {plan.ws_changes} changes at 50/s over 10 locations, HTTP write start "
                    f"-> client; p50 {med(phase, 'p50_ms'):.1f} ms, max {med(phase, 'max_ms'):.1f} ms; "
                    f"{'every' if complete else 'NOT every'} delivery arrived"
                    + (
                        f"; messages held for the frozen clients after a 30,000-change flood: "
                        f"{med('flood', 'pending_messages'):,.0f}, after the phase and 10,000 more "
                        f"changes to them: {pending:,.0f} (conflated: bounded by their distinct "
                        "positions)"
                        if phase == "frozen"
                        else ""
                    )
                ),
            )
        )
        bench.results.latencies.append(
            Latency(f"WS {label}", med(phase, "p50_ms"), med(phase, "p90_ms"), med(phase, "p99_ms"))
        )
    frozen = phases["frozen"]
    # The frozen clients must still be connected at the end (not dropped as stalled, which would
    # free what they hold and make the figure meaningless).
    attached = all(
        x["server_connections"] == f["connections"]
        for x, f in zip(frozen, phases["flood"], strict=True)
    )
    bench.add(
        Row(
            "WebSocket delivery",
            "server RSS growth, 1% frozen",
            median([x["rss_end_mb"] - x["rss_start_mb"] for x in frozen]),
            "MB",
            budget=Budget("value", "<=", WS_FROZEN_RSS_GROWTH_MB),
            holds=attached,
            note=(
                "memory flat with frozen clients: resident memory of omnistock serve (VmRSS, with "
                f"any workers) from the start of the frozen phase, {med('frozen', 'rss_start_mb'):.0f}"
                f" MB (after the flood; {med('plain', 'rss_start_mb'):.0f} MB before the phases), "
                f"to its end, {med('frozen', 'rss_end_mb'):.0f} MB, after its changes and 10,000 "
                "more to the frozen clients' positions; the frozen clients "
                f"{'stayed' if attached else 'did NOT stay'} connected throughout"
            ),
        )
    )


# -- Persistence ------------------------------------------------------------------------------------


def persistence(plan: Plan) -> list[Row]:
    """Import, persister and rebuild rates from loadtests.persistence_bench (servers of its own)."""
    runs = []
    for _ in range(plan.persistence_rounds):
        command = [
            sys.executable,
            *("-m", "loadtests.persistence_bench", "--positions", str(plan.positions)),
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
        if done.returncode:
            raise RuntimeError(f"persistence_bench failed: {done.stdout}{done.stderr}")
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    n = f"{plan.positions:,} positions, median of {len(runs)}"
    rebuild_per_million = median([r["rebuild_seconds"] for r in runs]) * 1_000_000 / plan.positions
    return [
        Row(
            "Persister",
            "events/s into Postgres",
            median([r["persister_events_per_s"] for r in runs]),
            "events/s",
            budget=Budget("value", ">=", 20_000),
            note=f"draining the import's events ({n}); fsync and synchronous_commit on",
        ),
        Row(
            "CSV import",
            "positions/s into Redis",
            median([r["import_rows_per_s"] for r in runs]),
            "rows/s",
            budget=Budget("value", ">=", 100_000),
            note=f"streamed CSV, absolute on_hand, events emitted ({n})",
        ),
        Row(
            "Rebuild",
            "seconds per 1M positions",
            rebuild_per_million,
            "s",
            budget=Budget("value", "<", 10),
            note=f"Redis reloaded from Postgres ({n}"
            + (", scaled to 1M)" if plan.positions != 1_000_000 else ")"),
        ),
    ]


# -- Tail latency -----------------------------------------------------------------------------------

# The server as it was before the tail-latency work, started beside the bench's own for the
# side-by-side figures (same build, same stores, same cpu; only the collector tuning off).
TAIL_BEFORE = {"OMNISTOCK_GC_FREEZE": "0"}
TAIL_LOAD = 0.75  # of the saturation rate
TAIL_CONNECTIONS = 16


def _collections(http: httpx.Client, url: str) -> tuple[float, float]:
    """Full (generation 2) collections of a server so far, and the seconds they took."""
    count = seconds = 0.0
    for line in http.get(f"{url}/metrics").text.splitlines():
        if line.startswith('omnistock_gc_pause_seconds_count{generation="2"}'):
            count = float(line.split()[-1])
        elif line.startswith('omnistock_gc_pause_seconds_sum{generation="2"}'):
            seconds = float(line.split()[-1])
    return count, seconds


@dataclass(frozen=True)
class TailRound:
    saturation: float  # req/s under wrk at max connections, just before
    load: PacedLoad
    cpu_wait_ms: float  # the server's threads waiting for their core, per second of the round
    full_gcs: float
    full_gc_ms: float


def _tail_round(
    bench: Bench, url: str, pid: int, rate: float, saturation: float, **request: str
) -> TailRound:
    gcs, gc_s = _collections(bench.http, url)
    waited = cpu_wait_seconds(pid)
    load = run_paced(
        url,
        rate=rate,
        seconds=bench.plan.seconds,
        connections=TAIL_CONNECTIONS,
        cpus=bench.plan.load_cpus,
        key=bench.key,
        **request,
    )
    waited = cpu_wait_seconds(pid) - waited
    gcs_after, gc_s_after = _collections(bench.http, url)
    return TailRound(
        saturation,
        load,
        waited * 1000 / bench.plan.seconds,
        gcs_after - gcs,
        (gc_s_after - gc_s) * 1000,
    )


def tail_latency(bench: Bench) -> None:
    """p99 at 75% of the saturation rate (wrk, max connections), open loop and paced
    (loadtests/paced.py), for availability reads and reservations; beside it the same server
    without the collector tuning (TAIL_BEFORE). Each server is measured at 75% of its own
    saturation, taken just before; which server goes first alternates round by round."""
    plan = bench.plan
    ours = bench.stack.serve_pid
    before_url = bench.stack.serve_another(1, plan.server_cpus, **TAIL_BEFORE)
    # Retired at the end: left running it shares the server's core with every later scenario
    # (the sourcing plan p99: 28.8 ms in a full run with it left running, 6.9 ms alone).
    before_proc = bench.stack.processes[-1]
    theirs = bench.stack.processes[-1].pid
    bench.location("tail-store")
    bench.receive("tail-store", ["TAIL-1", "TAIL-R"], 10**9)
    bench.settle()
    read_path = "/v1/availability/TAIL-1?location=tail-store"
    reserve = {"location": "tail-store", "lines": [{"sku": "TAIL-R", "qty": 1}]}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump({**reserve, "ttl_seconds": 3600, "channel": "web"}, f)
    kinds = [
        (
            "availability",
            "request",
            {"REQUEST_PATH": read_path, "REQUEST_KEY": bench.key},
            {"path": read_path},
            200,
            5.0,
        ),
        (
            "reservations",
            "reserve",
            {
                "RESERVE_LOCATION": "tail-store",
                "RESERVE_SKU": "TAIL-R",
                "RESERVE_KEY": bench.key,
                "RESERVE_TTL": "3600",
            },
            {"path": "/v1/reservations", "method": "POST", "body_file": f.name},
            201,
            10.0,
        ),
    ]
    # Valkey and Postgres (unpinned elsewhere) go to the generator's core for these rows: the
    # server's core is then its own, and what is left of its tail is the serving loop's.
    moved: dict[int, set[int]] = {}
    if plan.load_cpus:
        cpus = {int(c) for c in plan.load_cpus.split(",")}
        for store in (bench.stack.valkey.proc, bench.stack.postgres.proc):
            if store is not None:
                moved |= move_tree(store.pid, cpus)
    try:
        for kind, script, wrk_env, request, status, budget in kinds:
            after: list[TailRound] = []
            before: list[TailRound] = []
            servers = [(bench.url, ours, after), (before_url, theirs, before)]
            for n in range(plan.rounds):
                # Each server: its saturation, then 75% of it; which goes first alternates.
                for url, pid, into in servers if n % 2 == 0 else servers[::-1]:
                    sat = bench.wrk(script, wrk_env, url=url)
                    if set(sat.statuses) != {status}:
                        raise RuntimeError(f"{kind} saturation round answered {sat.statuses}")
                    bench.settle()
                    done = _tail_round(bench, url, pid, TAIL_LOAD * sat.rps, sat.rps, **request)
                    if set(done.load.statuses) != {status}:
                        raise RuntimeError(f"{kind} paced round answered {done.load.statuses}")
                    into.append(done)
                    bench.settle()
            bench.add(_tail_row(kind, after, before, budget))
            bench.results.latencies.append(
                Latency(
                    f"{kind} @75% (paced)",
                    median([x.load.p50_ms for x in after]),
                    median([x.load.p90_ms for x in after]),
                    median([x.load.p99_ms for x in after]),
                )
            )
    finally:
        restore_affinity(moved)
        Path(f.name).unlink()
        bench.stack.retire(before_proc)


def _tail_row(
    kind: str,
    after: list[TailRound],
    before: list[TailRound],
    budget: float,
) -> Row:
    def med(rounds: list[TailRound], field: str) -> float:
        return median([getattr(x.load, field) for x in rounds])

    def side(name: str, rounds: list[TailRound]) -> str:
        return (
            f"{name}: saturation {median([x.saturation for x in rounds]):,.0f} req/s, paced "
            f"{med(rounds, 'rps'):,.0f} req/s: p50 {med(rounds, 'p50_ms'):.2f} / p90 "
            f"{med(rounds, 'p90_ms'):.2f} / p99 {med(rounds, 'p99_ms'):.2f} / max {med(rounds, 'max_ms'):.1f} ms, full collections "
            f"{median([x.full_gcs for x in rounds]):.0f} taking "
            f"{median([x.full_gc_ms for x in rounds]):.1f} ms, server waited for its cpu "
            f"{median([x.cpu_wait_ms for x in rounds]):.0f} ms/s"
        )

    return Row(
        "Tail latency",
        f"{kind} p99 at 75% of saturation",
        med(after, "p99_ms"),
        "ms",
        baseline=med(before, "p99_ms"),
        baseline_name="without gc.freeze",
        budget=Budget("value", "<=", budget),
        note=(
            "each server: saturation under wrk (max connections), then 75% of it open loop "
            f"from a fixed schedule (loadtests/paced.py, {TAIL_CONNECTIONS} connections, latency "
            "from each request's due time; Valkey and Postgres on the generator's core); "
            "medians of rounds alternating which server goes first; "
            + side("ours", after)
            + "; "
            + side("without gc.freeze (OMNISTOCK_GC_FREEZE=0)", before)
            + f"; generator loop lag p99 {med(after, 'generator_lag_p99_ms'):.1f} ms, "
            f"{max(x.load.generator_cpu for x in after):.0%} of a core"
        ),
    )
