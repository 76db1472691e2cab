"""Stock states bench rows (issue 13): supply receipts and transfers against adjustments, and
availability reads with ``?by=`` against plain ones, interleaved round by round in the same run."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from loadtests.bench.report import Budget, Row
from loadtests.bench.scenarios import Bench, _percentiles
from loadtests.bench.tools import Load, median

STORE = "bench-states"
SKU = "STATE-1"
# Transfers go between two other locations, so their stock does not mix with the receipts'.
SENDER, RECEIVER = "bench-transfer-from", "bench-transfer-to"


def _body_file(body: object) -> str:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(body, f)
    return f.name


def _all_ok(loads: list[Load], what: str, status: int = 200) -> None:
    for load in loads:
        if set(load.statuses) != {status}:
            raise RuntimeError(f"{what} round answered {load.statuses}")


def stock_states(bench: Bench) -> None:
    """One-unit supply receipts and one-line transfers (HTTP) vs one-item adjustments; ``?by=``
    reads vs plain reads."""
    plan = bench.plan
    bench.location(STORE)
    bench.receive(STORE, [SKU], 1000)
    bench.location(SENDER)
    bench.location(RECEIVER)
    bench.receive(SENDER, [SKU], 10**9)  # no round can drain it: every transfer is a 201
    # One supply large enough that no round receives it all (each receipt takes 1 unit), and a
    # few with ETAs around `by`, so the range read finds members.
    due = "2026-12-01T09:00:00Z"
    for eta in ("2026-11-30T09:00:00Z", due, "2026-12-02T09:00:00Z"):
        bench.ok(
            bench.http.post(
                "/v1/supply",
                json={"location": STORE, "eta": eta, "lines": [{"sku": SKU, "qty": 1000}]},
            )
        )
    big = bench.ok(
        bench.http.post(
            "/v1/supply",
            json={"location": STORE, "eta": due, "lines": [{"sku": SKU, "qty": 10**9}]},
        )
    )
    bench.settle()
    receipt = _body_file({"lines": [{"sku": SKU, "qty": 1}]})
    adjustment = _body_file(
        {"adjustments": [{"sku": SKU, "location": STORE, "delta": 1, "reason": "receipt"}]}
    )
    transfer = _body_file({"from": SENDER, "to": RECEIVER, "eta": due,
                           "lines": [{"sku": SKU, "qty": 1}]})  # fmt: skip
    transfer_env = {"REQUEST_METHOD": "POST", "REQUEST_PATH": "/v1/transfers",
                    "REQUEST_BODY_FILE": transfer, "REQUEST_KEY": bench.key}  # fmt: skip
    receive_env = {"REQUEST_METHOD": "POST", "REQUEST_PATH": f"/v1/supply/{big['id']}/receive",
                   "REQUEST_BODY_FILE": receipt, "REQUEST_KEY": bench.key}  # fmt: skip
    adjust_env = {"REQUEST_METHOD": "POST", "REQUEST_PATH": "/v1/adjustments",
                  "REQUEST_BODY_FILE": adjustment, "REQUEST_KEY": bench.key}  # fmt: skip
    plain_env = {"REQUEST_PATH": f"/v1/availability/{SKU}?location={STORE}",
                 "REQUEST_KEY": bench.key}  # fmt: skip
    by_env = {"REQUEST_PATH": f"/v1/availability/{SKU}?location={STORE}&by={due}",
              "REQUEST_KEY": bench.key}  # fmt: skip
    receipts, adjustments, plain, by, transfers = [], [], [], [], []
    for _ in range(plan.rounds):
        adjustments.append(bench.wrk("request", adjust_env))
        receipts.append(bench.wrk("request", receive_env))
        bench.settle()
        transfers.append(bench.wrk("request", transfer_env))
        bench.settle()
        plain.append(bench.wrk("request", plain_env))
        by.append(bench.wrk("request", by_env))
    Path(receipt).unlink()
    Path(adjustment).unlink()
    Path(transfer).unlink()
    _all_ok(transfers, "transfer", 201)
    _all_ok(receipts, "supply receipt")
    _all_ok(adjustments, "adjustment")
    _all_ok(plain, "availability read")
    _all_ok(by, "availability ?by= read")
    bench.add(
        Row(
            "Supply receipts",
            "receipts/s",
            median([x.rps for x in receipts]),
            "req/s",
            baseline=median([x.rps for x in adjustments]),
            baseline_name="adjustments/s",
            budget=Budget("ratio", ">=", 0.5),
            note="POST /v1/supply/{id}/receive of 1 unit vs POST /v1/adjustments of 1 item, "
            "interleaved; " + _percentiles(receipts),
        )
    )
    bench.add(
        Row(
            "Transfers",
            "transfers/s",
            median([x.rps for x in transfers]),
            "req/s",
            baseline=median([x.rps for x in adjustments]),
            baseline_name="adjustments/s",
            budget=Budget("ratio", ">=", 0.5),
            note="POST /v1/transfers of 1 line (both locations' steps) vs POST /v1/adjustments "
            "of 1 item, interleaved; " + _percentiles(transfers),
        )
    )
    bench.add(
        Row(
            "Availability by date",
            "reads/s",
            median([x.rps for x in by]),
            "req/s",
            baseline=median([x.rps for x in plain]),
            baseline_name="plain reads/s",
            budget=Budget("ratio", ">=", 0.8),
            note="GET /v1/availability/{sku}?location=L&by=... vs the same without by, "
            "interleaved; " + _percentiles(by),
        )
    )
    bench.latency("supply receipt", receipts)
    bench.latency("transfer", transfers)
    bench.latency("availability ?by=", by)
