"""Where a reserve call's Redis time goes: reserve.lua and variants of it with one part cut
out, each a function of one library driven by redis-benchmark (FCALL, 50 clients, pipelined) on a
Valkey of its own with AOF off, Redis time per call from INFO commandstats. Rounds are
interleaved; medians printed.

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
from omnistock.redis.scripts import Library, Scripts

_DONE = "do return {0, '', 0, '', ''} end\n"


def variants(lib: str, body: str) -> dict[str, tuple[str, str]]:
    """reserve's (helpers, body), and what it costs without each part (cumulative stages first)."""

    def cut(old: str, new: str) -> tuple[str, str]:
        if old in body:
            return lib, body.replace(old, new, 1)
        assert old in lib, old
        return lib.replace(old, new, 1), body

    return {
        "reserve.lua as shipped": (lib, body),
        "stage: nothing run (FCALL floor)": (lib, "do return 1 end"),
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
        library = Scripts.load().library
        calls: dict[str, tuple[str, str]] = {}  # variant -> (command, function or sha)
        for name, (lib, body) in variants(library.lib, library.bodies["reserve"]).items():
            variant = Library(lib, {"reserve": body})
            client.function_load(variant.source, replace=True)
            calls[name] = ("FCALL", variant.function("reserve"))
        # The same code as a script: its helpers are defined again by every call.
        script = f"{library.lib}\n{library.bodies['reserve']}"
        calls["as an EVALSHA script (before functions)"] = ("EVALSHA", client.script_load(script))
        usec: dict[str, list[float]] = {name: [] for name in calls}
        rate: dict[str, list[float]] = {name: [] for name in calls}
        for _ in range(args.rounds):
            for name, (verb, target) in calls.items():
                client.config_resetstat()
                rps, _ = redis_benchmark(
                    valkey.port,
                    [verb, target, *command[2:]],
                    requests=args.calls,
                    pipeline=16,
                    cpus=None,
                    password=valkey.password,
                )
                stats = client.info("commandstats")[f"cmdstat_{verb.lower()}"]
                usec[name].append(float(stats["usec_per_call"]))
                rate[name].append(rps)
        client.close()
    finally:
        valkey.stop()
    print(f"{'variant':40} {'us/call':>8} {'calls/s':>9}")
    for name in usec:
        print(
            f"{name:40} {statistics.median(usec[name]):8.1f} {statistics.median(rate[name]):9,.0f}"
        )


if __name__ == "__main__":
    main()
