"""What one trimmer tick costs Valkey per partition stream: trim.lua as shipped, and without its
forward probe (the script before it: XREVRANGE ending below the first entry walks the whole
stream), on streams of reservation-like entries, with nothing below the id (a stream younger
than the retention window: every tick of the first hour) and with 1% below it. Valkey time per
call from INFO commandstats (min of 5 calls), on a Valkey of its own.

    python -m loadtests.trim_cost [--sizes 10000,100000,300000]"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import redis

from omnistock.embedded import EmbeddedValkey
from omnistock.redis.scripts import Library, Scripts

PROBE = "if #redis.call('XRANGE', KEYS[1], '-', '(' .. ARGV[1], 'COUNT', 1) == 0 then"
WALK = "local below = redis.call('XREVRANGE', KEYS[1], '(' .. ARGV[1], '-', 'COUNT', 1)\n"


def variants(body: str) -> dict[str, str]:
    """trim.lua as shipped, and as it was before its forward probe."""
    probe_at = body.index(PROBE)
    before = body[:probe_at] + body[body.index("end\n", probe_at) + 4 :]
    before = before.replace(WALK, WALK + "if #below == 0 then return { C_OK, 0, 0, '', '' } end\n")
    assert before != body and PROBE not in before
    return {"trim.lua as shipped": body, "before the forward probe": before}


def usec_per_call(client: Any, function: str, key: str, minid: str, calls: int) -> float:
    """The cheapest of ``calls`` calls, in Valkey microseconds."""
    best = float("inf")
    for _ in range(calls):
        client.config_resetstat()
        client.execute_command("FCALL", function, 1, key, minid)
        best = min(best, float(client.info("commandstats")["cmdstat_fcall"]["usec_per_call"]))
    return best


def fill(client: Any, key: str, size: int) -> list[bytes]:
    """``size`` entries with a reservation event's fields; their ids."""
    client.delete(key)
    pipe = client.pipeline(transaction=False)
    for n in range(size):
        pipe.xadd(
            key,
            {
                "k": "r",
                "l": "store-1",
                "s": "SKU-1",
                "v": n,
                "oh": 10**9,
                "r": n,
                "id": f"r{n:012d}",
            },
        )
        if n % 5000 == 4999:
            pipe.execute()
    pipe.execute()
    entries: list[tuple[bytes, Any]] = client.execute_command(
        "XRANGE", key, "-", "+", "COUNT", size // 100 + 1
    )
    return [entry_id for entry_id, _ in entries]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--sizes", default="10000,100000,300000")
    args = p.parse_args()
    valkey = EmbeddedValkey(Path(tempfile.mkdtemp(prefix="omnistock-trim-")) / "valkey")
    valkey.start()
    try:
        client = redis.Redis.from_url(valkey.url)
        client.config_set("appendonly", "no")
        body = Scripts.load().library.bodies["trim"]
        functions = {}
        for name, variant in variants(body).items():
            library = Library(Scripts.load().library.lib, {"trim": variant})
            client.function_load(library.source, replace=True)
            functions[name] = library.function("trim")
        print(f"{'entries':>8} {'variant':28} {'nothing below (us)':>19} {'1% below (us)':>14}")
        for size in (int(s) for s in args.sizes.split(",")):
            for name, function in functions.items():
                ids = fill(client, "s", size)
                first = ids[0].decode().split("-")[0]
                idle = usec_per_call(client, function, "s", f"{first}-0", calls=5)
                # One call: it drops what is below; a second would find nothing below.
                one_percent = usec_per_call(client, function, "s", ids[-1].decode(), calls=1)
                print(f"{size:>8} {name:28} {idle:19,.0f} {one_percent:14,.0f}")
        client.close()
    finally:
        valkey.stop()


if __name__ == "__main__":
    main()
