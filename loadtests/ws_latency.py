"""Change -> WebSocket client latency with many subscribers, against a running omnistock.

    python loadtests/ws_latency.py --url http://127.0.0.1:8000 --key ADMIN_KEY

Opens ``--subscribers`` WebSocket clients (each subscribed to one of ``--locations`` test
locations), makes ``--changes`` stock changes through HTTP at ``--rate`` per second, and reports
the latency from the start of each HTTP write to each client receiving the change (p50/p90/p99/
max), and from the change's commit time (its ``ts``, ms resolution) to the client. Then again
with ``--frozen`` of the clients frozen (subscribed to every test location, never reading, and
first flooded with ``--flood`` changes so the server cannot send to them any more), to show that
they do not delay the others and that the server holds a bounded backlog for them. Only loopback servers; bounded in count and time.
With ``--server-pid`` (the ``omnistock serve`` process, on this machine) it also reads the
server's resident memory (VmRSS of it and its workers) at the start and end of each phase. The
frozen phase ends with ``--reflood`` more changes to the frozen clients (after its latency is
measured, before its end figures), so those show whether what the server holds for frozen
clients grows with the changes they miss.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import ipaddress
import json
import os
import secrets
import socket
import statistics
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlparse

import httpx
from websockets.asyncio.client import ClientConnection, connect

DeliveryKey = tuple[str, str, int]  # location, sku, version


@dataclass
class Phase:
    expected: int = 0
    complete: asyncio.Event = field(default_factory=asyncio.Event)
    sent_at: dict[DeliveryKey, float] = field(default_factory=dict)
    received: list[tuple[DeliveryKey, float, float]] = field(
        default_factory=list
    )  # key, mono, wall
    commit_ms: dict[DeliveryKey, int] = field(default_factory=dict)


def loopback_only(url: str) -> str:
    host = urlparse(url).hostname or ""
    try:
        ok = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        ok = False
    if not ok:
        sys.exit(f"refusing to load-test {url}: only loopback servers (127.0.0.1, localhost)")
    return url.rstrip("/")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


CLIENTS_PER_KEY = 50


async def open_client(
    ws_url: str, key: str, frozen: bool, compression: bool = True
) -> ClientConnection:
    sock = None
    if frozen:  # tiny buffers, so the server soon cannot send to it any more
        host, port = urlparse(ws_url).hostname, urlparse(ws_url).port
        sock = socket.create_connection((host, port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    return await connect(
        ws_url,
        additional_headers={"Authorization": f"Bearer {key}"},
        sock=sock,
        max_queue=1 if frozen else 64,
        compression="deflate" if compression and not frozen else None,
        ping_interval=None,
        open_timeout=30,
        close_timeout=1,
    )


async def subscribe(ws: ClientConnection, sub: str, locations: list[str]) -> None:
    await ws.send(json.dumps({"op": "subscribe", "id": sub, "locations": locations}))
    while True:
        msg = json.loads(await asyncio.wait_for(ws.recv(), 30))
        if msg["type"] == "subscribed":
            return
        if msg["type"] == "error":
            raise RuntimeError(msg["detail"])


async def listen(ws: ClientConnection, phase: list[Phase]) -> None:
    """Record every change this client receives into the current phase."""
    async for raw in ws:
        now, wall = time.perf_counter(), time.time()
        msg = json.loads(raw)
        if msg["type"] == "change":
            key = (msg["location"], msg["sku"], msg["version"])
            phase[0].received.append((key, now, wall))
            if len(phase[0].received) >= phase[0].expected:
                phase[0].complete.set()
            if key not in phase[0].commit_ms:
                commit = datetime.fromisoformat(msg["ts"].replace("Z", "+00:00"))
                phase[0].commit_ms[key] = round(commit.timestamp() * 1000)


async def write_changes(
    http: httpx.AsyncClient, locations: list[str], count: int, rate: float, phase: Phase
) -> None:
    """``count`` cycle counts spread over the locations, ``rate`` per second (open loop)."""
    start = time.perf_counter()

    async def one(n: int) -> None:
        loc, sku = locations[n % len(locations)], f"sku-{n % 25}"
        t0 = time.perf_counter()
        resp = await http.put(f"/v1/stock/{loc}/{sku}", json={"on_hand": 1000 + n})
        resp.raise_for_status()
        body = resp.json()
        key = (loc, sku, body["version"])
        phase.sent_at[key] = t0

    tasks = []
    for n in range(count):
        delay = start + n / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(n)))
    await asyncio.gather(*tasks)


def report(name: str, phase: Phase, expected: int) -> dict[str, float]:
    """Print the phase's latencies and return them (ms) with the counts."""
    latencies = [
        (mono - phase.sent_at[key]) * 1000
        for key, mono, _ in phase.received
        if key in phase.sent_at
    ]
    from_commit = [
        wall * 1000 - phase.commit_ms[key]
        for key, _, wall in phase.received
        if key in phase.commit_ms
    ]
    print(f"\n== {name}: {len(latencies):,} deliveries of {expected:,} expected")
    found: dict[str, float] = {"deliveries": len(latencies), "expected": expected}
    if not latencies:
        return found
    found |= {
        "p50_ms": percentile(latencies, 0.5),
        "p90_ms": percentile(latencies, 0.9),
        "p99_ms": percentile(latencies, 0.99),
        "max_ms": max(latencies),
    }
    print(
        "   write start -> client (ms): "
        f"p50 {found['p50_ms']:.1f}  p90 {found['p90_ms']:.1f}  "
        f"p99 {found['p99_ms']:.1f}  max {found['max_ms']:.1f}  "
        f"mean {statistics.fmean(latencies):.1f}"
    )
    if from_commit:
        print(
            "   commit (ts, 1 ms resolution) -> client (ms): "
            f"p50 {percentile(from_commit, 0.5):.0f}  p99 {percentile(from_commit, 0.99):.0f}"
        )
    return found


async def flood(http: httpx.AsyncClient, location: str, changes: int) -> None:
    """Many changes over 5,000 positions, 1,000 per request: more than the frozen clients'
    socket buffers take, so the server has to hold (and conflate) what it cannot send."""
    for start in range(0, changes, 1000):
        items = [
            {"sku": f"flood-{n % 5000}", "location": location, "delta": 1, "reason": "receipt"}
            for n in range(start, min(changes, start + 1000))
        ]
        resp = await http.post("/v1/adjustments", json={"adjustments": items})
        resp.raise_for_status()


def rss_mb(pid: int) -> float:
    """Resident memory (MB) of process ``pid`` and its descendants (``omnistock serve
    --workers N`` serves from child processes), from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rpartition(")")[2].split()[1])
            except (OSError, ValueError, IndexError):
                continue  # gone, or not ours to read
            parents.setdefault(ppid, []).append(int(entry))
    total_kb, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo += parents.get(p, [])
        try:
            with open(f"/proc/{p}/status") as f:
                total_kb += next(int(x.split()[1]) for x in f if x.startswith("VmRSS:"))
        except (OSError, StopIteration):
            if p == pid:
                raise
    return total_kb / 1024


async def stream_gauges(http: httpx.AsyncClient) -> dict[str, float]:
    """The server's stream gauges (connections, messages held for clients)."""
    text = (await http.get("/metrics")).text
    wanted = ("omnistock_stream_connections ", "omnistock_stream_pending_messages ")
    return {
        name.removeprefix("omnistock_stream_"): float(value)
        for name, value in (line.split() for line in text.splitlines() if line.startswith(wanted))
    }


async def main(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    base = loopback_only(args.url)
    ws_url = base.replace("http", "ws", 1) + "/v1/stream"
    run = secrets.token_hex(3)
    locations = [f"lt-{run}-{n}" for n in range(args.locations)]
    flood_location = f"lt-{run}-flood"  # followed by the frozen clients only
    headers = {"Authorization": f"Bearer {args.key}"}
    key_ids: list[str] = []
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as http:
        for loc in [*locations, flood_location]:
            resp = await http.put(f"/v1/locations/{loc}", json={"name": loc, "kind": "store"})
            resp.raise_for_status()
        # Stream keys of its own, a few dozen clients each: a server takes at most
        # OMNISTOCK_WS_MAX_CONNECTIONS_PER_KEY (default 100) connections of one key.
        stream_keys: list[str] = []
        for n in range(-(-args.subscribers // CLIENTS_PER_KEY) + 1):
            made = await http.post(
                "/v1/keys", json={"name": f"ws-latency-{run}-{n}", "role": "feed"}
            )
            made.raise_for_status()
            stream_keys.append(made.json()["key"])
            key_ids.append(made.json()["id"])
        current: list[Phase] = [Phase(expected=1 << 62)]
        print(f"opening {args.subscribers:,} subscribers over {len(locations)} locations ...")
        sem = asyncio.Semaphore(100)

        async def live_client(n: int) -> ClientConnection:
            async with sem:
                key = stream_keys[n % (len(stream_keys) - 1)]
                ws = await open_client(ws_url, key, False, not args.no_compression)
                await subscribe(ws, f"s{n}", [locations[n % len(locations)]])
                return ws

        clients = await asyncio.gather(*(live_client(n) for n in range(args.subscribers)))
        listeners = [asyncio.create_task(listen(ws, current)) for ws in clients]
        listeners_of = [
            len(range(n, args.subscribers, len(locations))) for n in range(len(locations))
        ]
        expected = sum(listeners_of[n % len(locations)] for n in range(args.changes))
        frozen: list[ClientConnection] = []
        results: dict[str, dict[str, float]] = {}
        try:
            for name in ("plain", "frozen"):
                if name == "frozen":
                    count = max(1, round(args.subscribers * args.frozen))
                    for n in range(count):  # extra clients that subscribe to everything, then stop
                        ws = await open_client(ws_url, stream_keys[-1], frozen=True)
                        await subscribe(ws, f"f{n}", [*locations, flood_location])
                        frozen.append(ws)
                    await flood(http, flood_location, args.flood)
                    await asyncio.sleep(5)  # the flood's persistence is not what is measured
                    results["flood"] = held = await stream_gauges(http)
                    print(
                        f"\n{count} frozen clients on every test location, after a flood of "
                        f"{args.flood:,} changes to them alone: {held}"
                    )
                current[0] = phase = Phase(expected=expected)
                rss = {"rss_start_mb": rss_mb(args.server_pid)} if args.server_pid else {}
                # This process's own garbage collector would pause the 1,000 readers and show up
                # as server latency: it stays off while measuring.
                gc.collect()
                gc.disable()
                await write_changes(http, locations, args.changes, args.rate, phase)
                await asyncio.wait_for(phase.complete.wait(), args.settle)
                gc.enable()
                results[name] = report(name, phase, phase.expected)
                if name == "frozen" and args.reflood:
                    # More changes to the frozen clients' positions: what the server holds for
                    # them must not grow with the number of changes they miss.
                    await flood(http, flood_location, args.reflood)
                    await asyncio.sleep(2)
                gauges = await stream_gauges(http)
                if args.server_pid:
                    rss["rss_end_mb"] = rss_mb(args.server_pid)
                results[name] |= {f"server_{k}": v for k, v in gauges.items()} | rss
                print(f"   server: {gauges}" + (f", resident memory (MB): {rss}" if rss else ""))
        except TimeoutError:
            report("incomplete", current[0], current[0].expected)
            raise
        finally:
            for task in listeners:
                task.cancel()
            await asyncio.gather(
                *(ws.close() for ws in [*clients, *frozen]), return_exceptions=True
            )
            for key_id in key_ids:
                await http.delete(f"/v1/keys/{key_id}")
        return results


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--url", default="http://127.0.0.1:8000")
    p.add_argument("--key", required=True, help="an admin key (creates test locations)")
    p.add_argument("--subscribers", type=int, default=1000)
    p.add_argument("--locations", type=int, default=10)
    p.add_argument("--changes", type=int, default=500, help="per phase")
    p.add_argument("--rate", type=float, default=50.0, help="changes per second")
    p.add_argument("--frozen", type=float, default=0.01, help="share of frozen clients")
    p.add_argument("--settle", type=float, default=30.0, help="seconds to wait for deliveries")
    p.add_argument(
        "--no-compression", action="store_true", help="live clients without permessage-deflate"
    )
    p.add_argument("--json", help="also write the figures of each phase to this file")
    p.add_argument(
        "--server-pid", type=int, help="the server's process id: also report its memory (RSS)"
    )
    p.add_argument(
        "--flood", type=int, default=30_000, help="changes sent to the frozen clients first"
    )
    p.add_argument(
        "--reflood",
        type=int,
        default=10_000,
        help="changes sent to the frozen clients again after the frozen phase's latency is\n"
        "measured, before its memory and held messages are read again",
    )
    args = p.parse_args()
    if not (
        1 <= args.subscribers <= 5000
        and 1 <= args.changes <= 20_000
        and args.rate <= 2000
        and 0 <= args.flood <= 200_000
        and 0 <= args.reflood <= 200_000
    ):
        p.error("bounded: 1-5000 subscribers, 1-20000 changes, 2000 changes/s, 200000 (re)flood")
    return args


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    options = parse()
    figures = asyncio.run(main(options))
    if options.json:
        with open(options.json, "w") as out:
            json.dump(figures, out)
