"""What ranking one sourcing plan costs in Python (domain/sourcing.plan alone: no HTTP, no Redis),
for 5-line orders over 100 and 1,000 candidates, ship (max_locations 3) and pickup.

    python -m loadtests.sourcing_plan_cost [--plans 200] [--seed 12]

Each plan gets its own random network (every candidate holds 1..4 of the 5 skus (1..5 for pickup), 0..3 units each,
priority 10/50/100, 0.5..80 km away), so singles, pairs and the greedy cover all occur. Prints one
JSON line per case: p50/p99/max in ms and how many plans had no option."""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import time

from omnistock.domain.sourcing import Candidate, Fulfillment, plan

SKUS = ["s1", "s2", "s3", "s4", "s5"]


def network(rng: random.Random, size: int, most: int = 4) -> list[Candidate]:
    """``size`` candidates holding 1..``most`` of the skus, random priorities and distances."""
    out = []
    for i in range(size):
        held = {s: rng.randint(0, 3) for s in rng.sample(SKUS, rng.randint(1, most))}
        out.append(
            Candidate(
                location=f"loc{i:04d}",
                priority=rng.choice([10, 50, 100]),
                distance_km=round(rng.uniform(0.5, 80.0), 1),
                available=held,
            )
        )
    return out


def measure(size: int, fulfillment: Fulfillment, plans: int, seed: int) -> dict[str, object]:
    """Time ``plans`` plans of 5 lines (1 unit each: pickup; 2 units each: ship)."""
    rng = random.Random(seed)
    qty = 1 if fulfillment == "pickup" else 2
    lines = [(s, qty) for s in SKUS]
    # Pickup needs one location with every line: let some candidates hold all five skus.
    most = 5 if fulfillment == "pickup" else 4
    cases = [network(rng, size, most) for _ in range(plans)]
    times: list[float] = []
    empty = 0
    gc.collect()
    for cands in cases:
        start = time.perf_counter()
        result = plan(lines, fulfillment, cands)
        times.append((time.perf_counter() - start) * 1000)
        empty += not result.options
    times.sort()
    return {
        "candidates": size,
        "fulfillment": fulfillment,
        "plans": plans,
        "p50_ms": round(statistics.median(times), 3),
        "p99_ms": round(times[min(len(times) - 1, int(len(times) * 0.99))], 3),
        "max_ms": round(times[-1], 3),
        "no_option": empty,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--plans", type=int, default=200)
    parser.add_argument("--seed", type=int, default=12)
    args = parser.parse_args()
    for size in (100, 1000):
        for fulfillment in ("ship", "pickup"):
            fulfil: Fulfillment = "ship" if fulfillment == "ship" else "pickup"
            print(json.dumps(measure(size, fulfil, args.plans, args.seed)), flush=True)


if __name__ == "__main__":
    main()
