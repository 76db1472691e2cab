"""Lua cost profile of reserve: reserve.lua, the levers issue 14 item 8 names, and each redis.call
it makes on its own, side by side on ONE throwaway Valkey (AOF off), each a function of its own
library driven by redis-benchmark (FCALL, 50 clients, -P 16). Redis time per call is INFO
commandstats usec_per_call; variants are interleaved round by round and medians printed.

    python -m loadtests.lua_profile [--rounds 7] [--calls 10000] [--preload LIB ...] [--server PATH ...]
        [--docs docs/benchmarks.md]

Each ``--preload`` (an allocator, e.g. /lib/x86_64-linux-gnu/libjemalloc.so.2) runs the default
server again with it preloaded; each ``--server`` (e.g. a jemalloc redis-server unpacked from a
Debian package with apt-get download: for measuring only) runs the variants on that server. All
servers run side by side, interleaved, so allocators compare on one table. ``--docs`` writes the
table into that file's "Lua cost profile" section (docs/benchmarks.md; a bench run keeps it).
Variants other than "as shipped" are for profiling only (they do not keep reserve's promises)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shlex
import statistics
import sys
import tempfile
from pathlib import Path
from unittest import mock

import redis

from loadtests.bench.report import with_section
from loadtests.bench.scenarios import _raw_reserve_command
from loadtests.bench.tools import redis_benchmark
from omnistock import embedded
from omnistock.embedded import EmbeddedValkey
from omnistock.redis.scripts import Library, Scripts

_APPEND = "local id = redis.call('XADD', ctx.stream, '*', ...)"
_IDEM_KEY = "bench-idem-__rand_int__"
_SHIPPED = "reserve.lua as shipped"
SECTION = "## Lua cost profile"
_NOTE = (
    "Written by `loadtests/lua_profile.py` (a bench run keeps this section; what it shows is in "
    "[performance.md](performance.md#lua-cost-profile-issue-14-item-8)). A `--server` outside "
    "the product is measured only, e.g. Debian's jemalloc `redis-server`: `apt-get download "
    "redis-server redis-tools` and `dpkg-deb -x` each into a temporary folder."
)


def _combined_xadd(lib: str) -> str:
    """append() buffers its fields; reply() writes them as ONE stream entry (lever a)."""
    lib = lib.replace(
        _APPEND + "\n  ctx.first = ctx.first or id\n  ctx.last = id",
        "local f = ctx.fields\n  for i = 1, select('#', ...) do f[#f + 1] = select(i, ...) end",
        1,
    )
    lib = lib.replace(
        "now = now_ms(), indexed = {} }", "now = now_ms(), indexed = {}, fields = {} }", 1
    )
    # The idempotency fields join the same entry (its own id is not known before the XADD).
    flush = (
        "  if #ctx.fields > 0 then\n"
        "    local id = redis.call('XADD', ctx.stream, '*', unpack(ctx.fields))\n"
        "    ctx.first, ctx.last, ctx.fields = id, id, {}\n  end\n"
    )
    lib = lib.replace("      ctx.now, payload }))\n", "      ctx.now, payload }))\n" + flush, 1)
    return lib.replace(
        "  return { code, payload, 0, ctx.first or '', ctx.last or '' }\nend",
        flush + "  return { code, payload, 0, ctx.first or '', ctx.last or '' }\nend",
        1,
    )


def variants(lib: str, body: str) -> dict[str, tuple[str, str, bool]]:
    """name -> (helpers, body, with an Idempotency-Key)."""

    def cut(old: str, new: str, src: str = lib) -> str:
        assert old in src, old
        return src.replace(old, new, 1)

    alone = {
        "alone: EXISTS stream": "return redis.call('EXISTS', KEYS[1])",
        "alone: TIME": "return redis.call('TIME')[1]",
        "alone: HMGET loc (3 fields)": "return redis.call('HMGET', KEYS[5], 'ss', 'lt', 'c:web')",
        "alone: HMGET pos (7 fields)": (
            "return redis.call('HMGET', KEYS[7], 'oh', 'r', 'ss', 'v', 'ts', 'u', 'in')"
        ),
        "alone: HSET pos (4 fields)": (
            "return redis.call('HSET', KEYS[7], 'oh', 5, 'r', 1, 'v', 2, 'ts', 3)"
        ),
        "alone: XADD * (1 small field)": "return redis.call('XADD', KEYS[1], '*', 'p', 'x')",
        "alone: HSET res doc (300 B)": (
            "return redis.call('HSET', KEYS[3], 'doc', string.rep('x', 300), 'st', 'active')"
        ),
        "alone: ZADD expiry": "return redis.call('ZADD', KEYS[4], 1, ARGV[5])",
        "alone: cmsgpack.pack 23 fields": (
            "local t = {} for i = 1, 23 do t[i] = i end return #cmsgpack.pack(t)"
        ),
        "alone: table.concat 23 fields": (
            "local t = {} for i = 1, 23 do t[i] = i end return #table.concat(t, '|')"
        ),
        "alone: cjson.encode reservation doc": (
            "return #cjson.encode({ id = ARGV[5], location = ARGV[6], status = 'active', "
            "actor = ARGV[1], created_at = 1, expires_at = 2, channel = 'web', "
            "lines = { { 'HOT-1', 1, 1, 0 } } })"
        ),
    }
    out: dict[str, tuple[str, str, bool]] = {
        _SHIPPED: (lib, body, False),
        "as shipped + Idempotency-Key": (lib, body, True),
        "floor: empty FCALL": (lib, "do return 1 end", False),
        "(a) one XADD per call": (_combined_xadd(lib), body, False),
        "(a) one XADD per call + Idempotency-Key": (_combined_xadd(lib), body, True),
        "(b) no EXISTS (readiness check)": (
            cut("if redis.call('EXISTS', keys[1]) == 0 then", "if false then"),
            body,
            False,
        ),
        "(b) no expiry ZADD": (
            cut("redis.call('ZADD', k.exp, doc.expires_at, doc.id)", ""),
            body,
            False,
        ),
        "(b) no reservation HSET": (
            cut("redis.call('HSET', k.res, 'doc', json, 'st', 'active')", ""),
            body,
            False,
        ),
        "(d) p entry as table.concat, not cmsgpack": (
            cut("append(ctx, 'p', cmsgpack.pack({", "append(ctx, 'p', table.concat({").replace(
                "new.u - old.u, new.u, new.inc - old.inc, new.inc }))",
                "new.u - old.u, new.u, new.inc - old.inc, new.inc }, '|'))",
                1,
            ),
            body,
            False,
        ),
        "(d) no cjson.encode (doc as '{}')": (
            cut(
                "  local json = cjson.encode(doc)\n  redis.call('HSET', k.res,",
                "  local json = '{}'\n  redis.call('HSET', k.res,",
            ),
            body,
            False,
        ),
        "(d) save_pos builds no view table": (
            cut("  return view(loc_id, sku, new, loc, ctx.now)\nend", "  return nil\nend"),
            body,
            False,
        ),
        "(d) XADD MAXLEN ~ 1000000": (
            cut(
                _APPEND,
                "local id = redis.call('XADD', ctx.stream, 'MAXLEN', '~', 1000000, '*', ...)",
            ),
            body,
            False,
        ),
    }
    for name, code in alone.items():
        out[name] = (lib, code, False)
    return out


def _with_idem(command: list[str]) -> list[str]:
    """The same FCALL with an Idempotency-Key (a new one per call: no replays)."""
    numkeys = int(command[2])
    keys, args = command[3 : 3 + numkeys], command[3 + numkeys :]
    keys = [keys[0], _IDEM_KEY, *keys[2:]]
    args = [args[0], "h" * 40, "3600000", "idem-__rand_int__", *args[4:]]
    return [*command[:3], *keys, *args]


def _allocator(client: redis.Redis) -> str:
    info = client.info("server")
    version = info.get("valkey_version") or info.get("redis_version")
    return f"{info.get('server_name', 'redis')} {version} {client.info('memory')['mem_allocator']}"


class _Server:
    """A throwaway server (``binary``, default: the embedded one) with every variant loaded."""

    def __init__(self, binary: Path | None, preload: Path | None = None) -> None:
        patch = (
            mock.patch.object(embedded, "valkey_binary", return_value=binary)
            if binary
            else contextlib.nullcontext()
        )
        # LD_PRELOAD swaps the allocator of the same build (INFO still names the built-in one).
        env = mock.patch.dict(os.environ, {"LD_PRELOAD": str(preload)}) if preload else None
        with patch, env or contextlib.nullcontext():
            self.valkey = EmbeddedValkey(
                Path(tempfile.mkdtemp(prefix="omnistock-luaprof-")) / "valkey"
            )
            self.valkey.start()
        if preload and self.valkey.proc:
            maps = Path(f"/proc/{self.valkey.proc.pid}/maps").read_text()
            if preload.name not in maps:
                raise RuntimeError(f"{preload} was not loaded into valkey-server")
        command = asyncio.run(_raw_reserve_command(self.valkey.url))
        self.stream = command[3]
        self.client = redis.Redis.from_url(self.valkey.url)
        self.client.config_set("appendonly", "no")
        self.label = _allocator(self.client) + (f" + LD_PRELOAD {preload.name}" if preload else "")
        library = Scripts.load().library
        self.calls: dict[str, list[str]] = {}
        for name, (lib, body, idem) in variants(library.lib, library.bodies["reserve"]).items():
            variant = Library(lib, {"reserve": body})
            self.client.function_load(variant.source, replace=True)
            cmd = _with_idem(command) if idem else command
            self.calls[name] = ["FCALL", variant.function("reserve"), *cmd[2:]]

    def _cpu(self) -> float:
        info = self.client.info("cpu")
        return float(info["used_cpu_user_main_thread"]) + float(info["used_cpu_sys_main_thread"])

    def usec(self, name: str, calls: int) -> tuple[float, float]:
        """Redis time per call of variant ``name`` over ``calls`` calls (commandstats), and the
        server main thread's CPU time per call (not inflated while other processes hold the
        core; it includes reading and parsing the command, as the floor's figure shows)."""
        self.client.config_resetstat()
        cpu = self._cpu()
        redis_benchmark(
            self.valkey.port,
            self.calls[name],
            requests=calls,
            pipeline=16,
            cpus=None,
            password=self.valkey.password,
        )
        stats = self.client.info("commandstats")["cmdstat_fcall"]
        if stats.get("failed_calls"):
            raise RuntimeError(f"{name}: {stats['failed_calls']} calls failed")
        return float(stats["usec_per_call"]), (self._cpu() - cpu) * 1e6 / calls

    def reset_stream(self) -> None:
        """Keep the stream short between rounds so XADD costs alike in every round."""
        self.client.delete(self.stream)
        self.client.xadd(self.stream, {"init": "1"})

    def stop(self) -> None:
        self.client.close()
        self.valkey.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--calls", type=int, default=10_000)
    p.add_argument("--server", type=Path, action="append", default=[])
    p.add_argument(
        "--preload",
        type=Path,
        action="append",
        default=[],
        help="also run the default server with this allocator preloaded (e.g. libjemalloc.so.2)",
    )
    p.add_argument(
        "--docs", type=Path, help="write the table into this benchmarks.md's Lua cost profile"
    )
    args = p.parse_args()
    servers: list[_Server] = []
    try:
        servers.append(_Server(None))
        servers += [_Server(None, lib) for lib in args.preload]
        servers += [_Server(binary) for binary in args.server]
        names = list(servers[0].calls)
        us = {(s.label, n): list[float]() for s in servers for n in names}
        cpu = {(s.label, n): list[float]() for s in servers for n in names}
        ratio = {(s.label, n): list[float]() for s in servers for n in names}
        for r in range(args.rounds):
            for name in names if r % 2 == 0 else reversed(names):
                for server in servers if r % 2 == 0 else reversed(servers):
                    # Paired with a run of reserve as shipped right before or after it (the
                    # order alternates), so load from other processes hits both alike.
                    pair = [_SHIPPED, name] if r % 2 == 0 else [name, _SHIPPED]
                    got = {n: server.usec(n, args.calls) for n in pair}
                    us[server.label, name].append(got[name][0])
                    cpu[server.label, name].append(got[name][1])
                    ratio[server.label, name].append(got[name][1] / got[_SHIPPED][1])
            for server in servers:
                server.reset_stream()
    finally:
        for server in servers:
            server.stop()
    lines = [
        f"{args.rounds} rounds x {args.calls:,} calls per run, medians of rounds. us/call: INFO "
        "commandstats usec_per_call of FCALL (wall clock inside the server: grows when other "
        "processes take the core); cpu us/call: the server main thread's CPU time per call "
        "(used_cpu_*_main_thread; includes reading and parsing the command, see the floor); "
        "ratio: cpu of each run over the cpu of the run of reserve as shipped next to it.",
        "",
        "| variant | "
        + " | ".join(f"{s.label}: us/call | cpu us/call | ratio" for s in servers)
        + " |",
        "|---|" + "---:|---:|---:|" * len(servers),
    ]
    for name in names:
        cells = " | ".join(
            f"{statistics.median(us[s.label, name]):.1f} | "
            f"{statistics.median(cpu[s.label, name]):.1f} | "
            f"{statistics.median(ratio[s.label, name]):.2f}x"
            for s in servers
        )
        lines.append(f"| {name} | {cells} |")
    print("\n".join(lines))
    if args.docs:
        command = shlex.join(["python", "-m", "loadtests.lua_profile", *sys.argv[1:]])
        section = "\n".join([SECTION, "", f"Command: `{command}`", "", _NOTE, "", *lines, ""])
        old = args.docs.read_text() if args.docs.exists() else ""
        args.docs.write_text(with_section(old, SECTION, section))


if __name__ == "__main__":
    main()
