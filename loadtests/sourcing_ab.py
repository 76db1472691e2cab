"""The plan-latency row (5-line ship plan over 100 candidates, paced at 50/s) for this tree and a
baseline tree, interleaved round by round on ONE Valkey/Postgres, plus a trivial endpoint paced
the same way in the same run (how much of the p99 is the client and the machine, not the plan).

    python -m loadtests.sourcing_ab --baseline-src /work/main/src [--rounds 3] [--seconds 5]

Both servers run this venv's ``omnistock serve`` pinned to cpu 0 (the load on cpu 1); the
baseline imports its package from ``--baseline-src`` (PYTHONPATH goes before the venv). Prints
one line per round and the medians."""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from loadtests.bench.__main__ import QUICK
from loadtests.bench.scenarios import Bench
from loadtests.bench.sourcing import PLAN_BODY, PLAN_RATE, _body_file, _network
from loadtests.bench.stack import running
from loadtests.bench.tools import PacedLoad, cpu_seconds, run_paced


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--baseline-src", required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    plan = QUICK
    body = _body_file(PLAN_BODY)
    with running() as stack:
        url = stack.serve(1, plan.server_cpus)
        key = stack.omnistock("keys", "create", "--role", "admin", "bench")
        base = stack.serve_another(1, plan.server_cpus, PYTHONPATH=args.baseline_src)
        bench = Bench(stack, url, key, plan)
        _network(bench)
        runs: dict[str, list[PacedLoad]] = {"trivial": [], "baseline": [], "candidate": []}
        pids = {"baseline": stack.processes[-1].pid, "candidate": stack.serve_pid}
        cpu: dict[str, list[float]] = {"trivial": [], "baseline": [], "candidate": []}

        def paced(target: str, path: str, method: str, body_file: str | None) -> PacedLoad:
            return run_paced(
                target, rate=PLAN_RATE, seconds=args.seconds, connections=8,
                cpus=plan.load_cpus, path=path, key=key, method=method, body_file=body_file,
            )  # fmt: skip

        for n in range(args.rounds):
            before = 1000 * cpu_seconds(pids["candidate"])
            runs["trivial"].append(paced(url, "/v1/locations/src-000", "GET", None))
            cpu["trivial"].append(
                (1000 * cpu_seconds(pids["candidate"]) - before) / runs["trivial"][-1].statuses[200]
            )
            order = ["baseline", "candidate"] if n % 2 == 0 else ["candidate", "baseline"]
            for name in order:
                target = base if name == "baseline" else url
                before = 1000 * cpu_seconds(pids[name])
                runs[name].append(paced(target, "/v1/sourcing/plans", "POST", body))
                cpu[name].append(
                    (1000 * cpu_seconds(pids[name]) - before) / runs[name][-1].statuses[200]
                )
            for name, loads in runs.items():
                last = loads[-1]
                print(json.dumps({"round": n, "run": name, "statuses": last.statuses,
                                  "p50_ms": round(last.p50_ms, 2), "p99_ms": round(last.p99_ms, 2),
                                  "max_ms": round(last.max_ms, 2),
                                  "server_cpu_ms_per_req": round(cpu[name][-1], 2),
                                  "gen_lag_p99_ms": round(last.generator_lag_p99_ms, 2)}),
                      flush=True)  # fmt: skip
    Path(body).unlink()
    for name, loads in runs.items():
        print(
            f"median of {len(loads)} rounds {name}: "
            f"p50 {statistics.median(x.p50_ms for x in loads):.2f} ms, "
            f"p99 {statistics.median(x.p99_ms for x in loads):.2f} ms, "
            f"server cpu {statistics.median(cpu[name]):.2f} ms/request",
            flush=True,
        )


if __name__ == "__main__":
    main()
