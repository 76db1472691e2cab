"""loadtests/ledger_scale.py on a small ledger: it generates what it says, the timed queries run,
and retention drops the oldest month whole (so the script stays runnable and truthful)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ledger_scale_generates_times_and_drops_a_month() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "loadtests.ledger_scale", "--rows", "20000", "--samples", "3",
         "--locations", "20", "--skus", "50", "--upgrade-rows", "5000", "--json"],
        capture_output=True, text=True, check=False, cwd=ROOT, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    out = json.loads(done.stdout[done.stdout.index("{") :])
    assert out["rows"] == 20_000
    assert out["partitions"] == 16  # 13 months of history, 2 ahead, the default
    assert out["hot_position_rows"] == 1_000  # one row in 20
    assert out["reconcile_walk_positions"] == out["positions"]
    # The oldest month: its rows older than the cutoff pruned as rows, the rest dropped whole.
    assert out["prune_batch_rows"] > 0 and out["drop_month_rows"] > 0
    gone = out["prune_batch_rows"] + out["drop_month_rows"]
    assert out["rows_after_retention"] == 20_000 - gone and gone < 20_000 // 6
    assert out["upgrade_rows"] == 5_000 and out["upgrade_s"] > 0  # every row checked there
    for key in ("history_first_page_ms", "history_hot_deep_page_ms", "reconcile_walk_s"):
        assert out[key] > 0
