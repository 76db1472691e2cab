"""``python -m loadtests.bench [--quick]`` (what ``./scripts/bench`` runs): starts embedded Valkey
and Postgres, omnistock and its baselines, runs every scenario, prints the table (last line
``bench: N/M budgets met``) and writes docs/benchmarks.md with a latency chart."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from loadtests.bench import cluster, ledger, scenarios, sourcing, states, wait
from loadtests.bench.report import (
    carried,
    render_markdown,
    render_text,
    summary_line,
    write_chart,
)
from loadtests.bench.scenarios import Bench, Plan
from loadtests.bench.stack import running

QUICK = Plan(
    rounds=3,
    seconds=5,
    connections=64,
    server_cpus="0",
    load_cpus="1",
    script_calls=200_000,
    ws_rounds=1,
    ws_changes=300,
    persistence_rounds=2,
    positions=200_000,
)
FULL = replace(
    QUICK,
    rounds=5,
    seconds=10,
    script_calls=500_000,
    ws_rounds=3,
    ws_changes=500,
    persistence_rounds=3,
    positions=1_000_000,
)


SCENARIOS = (
    scenarios.reservations,
    scenarios.reads,
    scenarios.rate_limit_cost,
    scenarios.batch_reads,
    scenarios.flash_sale,
    scenarios.websocket,
    scenarios.tail_latency,
    sourcing.sourcing,
    states.stock_states,
    cluster.cluster,
    wait.wait_replicas,
)


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="./scripts/bench", description=__doc__)
    p.add_argument("--quick", action="store_true", help="fewer and shorter rounds (< 5 minutes)")
    p.add_argument("--workers", type=int, default=1, help="omnistock serve --workers (default 1)")
    p.add_argument(
        "--no-pin", action="store_true", help="do not pin servers and load generators to cpus"
    )
    p.add_argument("--docs", default="docs", help="where benchmarks.md and the chart go")
    p.add_argument("--no-docs", action="store_true", help="print only; leave docs/ alone")
    p.add_argument(
        "--only",
        action="append",
        choices=[s.__name__ for s in SCENARIOS],
        help="run only this scenario (repeatable; no persistence rows; implies --no-docs)",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    plan = QUICK if args.quick else FULL
    if args.no_pin or args.workers > 1:
        plan = replace(plan, server_cpus=None, load_cpus=None)
    started = time.monotonic()
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    with running() as stack:
        url = stack.serve(args.workers, plan.server_cpus)
        key = stack.omnistock("keys", "create", "--role", "admin", "bench")
        bench = Bench(stack, url, key, plan)
        for scenario in SCENARIOS:
            if args.only and scenario.__name__ not in args.only:
                continue
            print(f"== {scenario.__name__} ...", file=sys.stderr, flush=True)
            scenario(bench)
    results = bench.results
    if not args.only:
        print("== persistence ...", file=sys.stderr, flush=True)
        results.rows += scenarios.persistence(plan)
        print("== ledger at scale ...", file=sys.stderr, flush=True)
        results.rows += ledger.ledger_scale(plan)
    print(render_text(results.rows))
    pinning = (
        f"omnistock (1 process) pinned to cpu {plan.server_cpus}, load generators to cpu "
        f"{plan.load_cpus}, Valkey and Postgres unpinned"
        if plan.server_cpus
        else f"omnistock with {args.workers} worker(s), nothing pinned"
    )
    setup = (
        f"{pinning}; medians of {plan.rounds} rounds of {plan.seconds:g} s (wrk -t1); "
        f"took {time.monotonic() - started:.0f} s"
    )
    if not args.no_docs and not args.only:
        docs = Path(args.docs)
        docs.mkdir(parents=True, exist_ok=True)
        write_chart(results.latencies, docs / "benchmarks.png")
        command = shlex.join(["./scripts/bench", *(argv if argv is not None else sys.argv[1:])])
        target = docs / "benchmarks.md"
        keep = carried(target.read_text()) if target.exists() else ""
        markdown = render_markdown(results, command, setup, when, "benchmarks.png")
        target.write_text(markdown + ("\n" + keep if keep else ""))
    print(summary_line(results.rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
