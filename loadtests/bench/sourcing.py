"""Sourcing rows (DESIGN.md "Performance budget, round 2"): the p99 of a 5-line ship plan over 100
candidate locations at low load (paced, open loop), and sourcing holds/s against single-location
reservations/s of the same order, interleaved round by round in the same run."""

from __future__ import annotations

import json
import random
import tempfile
from pathlib import Path

from loadtests.bench.report import Budget, Row
from loadtests.bench.scenarios import Bench, _percentiles
from loadtests.bench.tools import median, run_paced

CANDIDATES = 100
PLAN_SKUS = [f"SRC-{n}" for n in range(5)]
PLAN_RATE = 50.0  # requests/s: "low load"
# The plan the row times: 5 lines, 2 of each, over the 100 stores of ``_network``.
PLAN_BODY = {
    "lines": [{"sku": sku, "qty": 2} for sku in PLAN_SKUS],
    "fulfillment": "ship",
    "group": "bench-src",
    "near": {"lat": 41.88, "lon": -87.63},
    "max_locations": 3,
}
HOLD_GROUP = "bench-hold"
HOLD_LOCATIONS = 10
HOLD_SKU = "SRC-HOLD"


def _body_file(body: object) -> str:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(body, f)
    return f.name


def _network(bench: Bench) -> None:
    """100 stores around one point, each holding 1..4 of the 5 skus (so plans split), with
    priorities 10/50/100; and 10 stores with plenty of one sku for the hold rows."""
    rng = random.Random(12)
    for n in range(CANDIDATES):
        location = f"src-{n:03d}"
        bench.ok(
            bench.http.put(
                f"/v1/locations/{location}",
                json={
                    "name": location,
                    "kind": "store",
                    "lat": 41.88 + rng.uniform(-0.4, 0.4),
                    "lon": -87.63 + rng.uniform(-0.4, 0.4),
                    "pickup": True,
                    "ship_from": True,
                    "groups": ["bench-src"],
                    "priority": rng.choice([10, 50, 100]),
                },
            )
        )
        bench.receive(location, rng.sample(PLAN_SKUS, rng.randint(1, 4)), rng.randint(1, 3))
    for n in range(HOLD_LOCATIONS):
        location = f"hold-{n}"
        bench.ok(
            bench.http.put(
                f"/v1/locations/{location}",
                json={"name": location, "kind": "store", "ship_from": True, "groups": [HOLD_GROUP]},
            )
        )
        bench.receive(location, [HOLD_SKU], 10**9)
    bench.settle()


def sourcing(bench: Bench) -> None:
    """Plan latency at low load; sourcing holds/s vs reservations/s of the same 1-line order."""
    plan = bench.plan
    _network(bench)
    plan_body = _body_file(PLAN_BODY)
    hold_body = _body_file(
        {
            "lines": [{"sku": HOLD_SKU, "qty": 1}],
            "fulfillment": "ship",
            "group": HOLD_GROUP,
            "ttl_seconds": 3600,
            "channel": "web",
        }
    )
    try:
        plans = [
            run_paced(
                bench.url,
                rate=PLAN_RATE,
                seconds=plan.seconds,
                connections=8,
                cpus=plan.load_cpus,
                path="/v1/sourcing/plans",
                key=bench.key,
                method="POST",
                body_file=plan_body,
            )
            for _ in range(plan.rounds)
        ]
        single_env = {
            "RESERVE_LOCATION": "hold-0",
            "RESERVE_SKU": HOLD_SKU,
            "RESERVE_KEY": bench.key,
            "RESERVE_TTL": "3600",
        }
        hold_env = {
            "REQUEST_METHOD": "POST",
            "REQUEST_PATH": "/v1/sourcing/reservations",
            "REQUEST_BODY_FILE": hold_body,
            "REQUEST_KEY": bench.key,
        }
        singles, holds = [], []
        for _ in range(plan.rounds):
            singles.append(bench.wrk("reserve", single_env))
            bench.settle()
            holds.append(bench.wrk("request", hold_env))
            bench.settle()
    finally:
        Path(plan_body).unlink()
        Path(hold_body).unlink()
    for paced in plans:
        if set(paced.statuses) != {200}:
            raise RuntimeError(f"plan round answered {paced.statuses}")
    for load in singles + holds:
        if set(load.statuses) != {201}:
            raise RuntimeError(f"hold round answered {load.statuses}")
    bench.add(
        Row(
            "Sourcing",
            "5-line ship plan p99",
            median([x.p99_ms for x in plans]),
            "ms",
            budget=Budget("value", "<=", 10),
            note=(
                f"POST /v1/sourcing/plans, 5 lines over {CANDIDATES} candidates (group, near, "
                f"max_locations 3), paced at {PLAN_RATE:g}/s; p50 "
                f"{median([x.p50_ms for x in plans]):.2f} ms"
            ),
        )
    )
    bench.add(
        Row(
            "Sourcing",
            "sourcing holds/s",
            median([x.rps for x in holds]),
            "req/s",
            baseline=median([x.rps for x in singles]),
            baseline_name="reservations/s",
            budget=Budget("ratio", ">=", 0.4),
            note=(
                f"POST /v1/sourcing/reservations (1 line, ship over {HOLD_LOCATIONS} candidates) "
                "vs POST /v1/reservations of the same line at one of them, interleaved, "
                f"{plan.connections} connections; holds {_percentiles(holds)}; "
                f"reservations {_percentiles(singles)}"
            ),
        )
    )
    bench.latency("sourcing plan (paced)", plans)
    bench.latency("sourcing hold", holds)
