"""The cluster bench rows (loadtests/bench/cluster.py) from known samples: which figure each row
takes, the 1-primary budget on reservations only, per-shard medians."""

from __future__ import annotations

from typing import Any, cast

from loadtests.bench.cluster import Sample, _order_row, _rows
from loadtests.bench.scenarios import Bench, Plan
from loadtests.bench.tools import Load

PLAN = Plan(
    rounds=3,
    seconds=5,
    connections=64,
    server_cpus="0",
    load_cpus="1",
    script_calls=1,
    ws_rounds=1,
    ws_changes=1,
    persistence_rounds=1,
    positions=1,
)


class _Bench:
    plan = PLAN


def _sample(rps: float, node_us: list[float], app_us: float = 400.0) -> Sample:
    load = Load(rps, {201: int(rps * 5)}, int(rps * 5), 5.0, 1.0, 2.0, 3.0, 0.05)
    nodes = len(node_us)
    return Sample(
        load=load,
        app_share=0.5,
        worker_share=0.2,
        app_us=app_us,
        worker_us=100.0,
        node_share=[0.1] * nodes,
        node_us=node_us,
        node_fcall_us=[50.0] * nodes,
        calls_per_request=1.0,
        stream_reads_per_request=2.0,
    )


def _found(one_rps: float) -> dict[str, list[Sample]]:
    return {
        "standalone": [_sample(r, [100.0]) for r in (1000, 1100, 900)],
        "1 primary": [_sample(r, [120.0]) for r in (one_rps, one_rps + 10, one_rps - 10)],
        "3 primaries": [
            _sample(800, [150.0, 160.0, 170.0]),
            _sample(820, [152.0, 158.0, 190.0]),
            _sample(810, [148.0, 162.0, 160.0]),
        ],
    }


def test_reservation_rows_budget_the_one_primary_ratio() -> None:
    bench = cast(Bench, cast(Any, _Bench()))
    rows = _rows(bench, "reserve", _found(880), 12)
    one, three, valkey, app = rows
    assert (one.scenario, one.candidate, one.baseline) == (
        "Cluster 1 primary vs standalone",
        880,
        1000,
    )
    assert one.ratio == 0.88 and one.met is True
    assert _rows(bench, "reserve", _found(800), 12)[0].met is False  # 0.80x < 0.85x
    assert (three.candidate, three.baseline, three.budget) == (810, 880, None)
    # per shard: the median of its rounds (150, 160, 170), then the median shard
    assert valkey.candidate == 160.0 and "150.0/160.0/170.0" in valkey.note
    assert app.candidate == 400.0 and "100 us" in app.note


def test_read_rows_carry_no_budget() -> None:
    bench = cast(Bench, cast(Any, _Bench()))
    rows = _rows(bench, "read", _found(800), 12)
    assert [row.budget for row in rows] == [None] * 4
    assert rows[0].metric == "reads/s through HTTP" and rows[2].metric.startswith("Valkey time")


def test_order_row_compares_with_one_line_reservations() -> None:
    bench = cast(Bench, cast(Any, _Bench()))
    orders = [_sample(600, [200.0, 210.0, 220.0]) for _ in range(3)]
    singles = _found(880)["3 primaries"]
    row = _order_row(bench, orders, singles)
    assert (row.candidate, row.baseline) == (210.0, 160.0)
