"""Where a reserve call's Redis time goes: reserve.lua and variants of it with one part cut
out, each driven by redis-benchmark (EVALSHA, 50 clients, pipelined) on a Valkey of its own with
AOF off, Redis time per call from INFO commandstats. Rounds are interleaved; medians printed.

    python -m loadtests.lua_cost [--rounds 3] [--calls 30000]

The variants are for profiling only (they do not keep reserve's promises)."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from pathlib import Path

import redis

from loadtests.bench.scenarios import _raw_reserve_command
from loadtests.bench.tools import redis_benchmark
from omnistock.embedded import EmbeddedValkey
from omnistock.redis.scripts import Scripts

_DONE = "do return {0, '', 0, '', ''} end\n"


def variants(source: str) -> dict[str, str]:
    """reserve.lua, and what it costs without each part (cumulative stages first)."""
    body = source.index("local ctx, stop = begin")

    def cut(old: str, new: str) -> str:
        assert old in source, old
        return source.replace(old, new, 1)

    return {
        "reserve.lua as shipped": source,
        "stage: helpers defined, nothing run": source[:body] + "return 1",
        "stage: + begin (EXISTS, TIME)": cut(
            "local loc_id = ARGV[6]", _DONE + "local loc_id = ARGV[6]"
        ),
        "stage: + location and position read": cut(
            "local partial = ARGV[10] == '1'", _DONE + "local partial = ARGV[10] == '1'"
        ),
        "without the two XADDs": cut(
            "local id = redis.call('XADD', ctx.stream, '*', ...)", "local id = '1-1'"
        ),
        "without the expiry ZADD": cut("redis.call('ZADD', KEYS[4], doc.expires_at, doc.id)", ""),
        "without cjson.encode": cut("local json = cjson.encode(doc)", "local json = '{}'"),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--calls", type=int, default=30_000)
    args = p.parse_args()
    valkey = EmbeddedValkey(Path(tempfile.mkdtemp(prefix="omnistock-lua-")) / "valkey")
    valkey.start()
    try:
        command = asyncio.run(_raw_reserve_command(valkey.url))
        client = redis.Redis.from_url(valkey.url)
        client.config_set("appendonly", "no")
        shas = {
            name: client.script_load(src)
            for name, src in variants(Scripts.load().reserve.source).items()
        }
        usec: dict[str, list[float]] = {name: [] for name in shas}
        rate: dict[str, list[float]] = {name: [] for name in shas}
        for _ in range(args.rounds):
            for name, sha in shas.items():
                client.config_resetstat()
                rps, _ = redis_benchmark(
                    valkey.port,
                    [command[0], sha, *command[2:]],
                    requests=args.calls,
                    pipeline=16,
                    cpus=None,
                )
                stats = client.info("commandstats")["cmdstat_evalsha"]
                usec[name].append(float(stats["usec_per_call"]))
                rate[name].append(rps)
        client.close()
    finally:
        valkey.stop()
    print(f"{'variant':40} {'us/call':>8} {'calls/s':>9}")
    for name in shas:
        print(
            f"{name:40} {statistics.median(usec[name]):8.1f} {statistics.median(rate[name]):9,.0f}"
        )


if __name__ == "__main__":
    main()
