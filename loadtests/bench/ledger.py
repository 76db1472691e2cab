"""The ledger at scale (issue 14): loadtests.ledger_scale on a Postgres of its own, as bench rows.
No budget is set by the issue beyond "fast at 100M rows": the rows report the figures, and
docs/scaling.md extrapolates them."""

from __future__ import annotations

import json
import subprocess
import sys

from loadtests.bench.report import Row
from loadtests.bench.scenarios import ROOT, Plan

ROWS_PER_POSITION_RUN = 5  # ledger rows generated per position of the persistence plan


def ledger_scale(plan: Plan) -> list[Row]:
    """History pages, the before lookup and the reconcile walk on a generated ledger."""
    rows = plan.positions * ROWS_PER_POSITION_RUN
    command = [
        sys.executable,
        *("-m", "loadtests.ledger_scale", "--rows", str(rows), "--json"),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
    if done.returncode:
        raise RuntimeError(f"ledger_scale failed: {done.stdout}{done.stderr}")
    r = json.loads(done.stdout[done.stdout.index("{") :])
    note = (
        f"{r['rows']:,} generated ledger rows over {r['partitions']} month partitions,"
        f" {r['positions']:,} positions, a hot one of {r['hot_position_rows']:,} rows; medians"
        f" of 50; a month dropped in {r['drop_month_ms']} ms; extrapolated to 100M rows in"
        " docs/scaling.md"
    )
    return [
        Row("Ledger at scale", "history first page", r["history_first_page_ms"], "ms",
            note=note),
        Row("Ledger at scale", "history deep page, hot position",
            r["history_hot_deep_page_ms"], "ms"),
        Row("Ledger at scale", "reconcile walk, s per 1M positions",
            round(r["reconcile_walk_s"] * 1_000_000 / r["reconcile_walk_positions"], 2), "s"),
    ]  # fmt: skip
