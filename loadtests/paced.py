"""Open-loop HTTP load at a fixed rate (what wrk2 does; wrk itself cannot pace).

    python -m loadtests.paced --url http://127.0.0.1:8000 --rate 3000 --seconds 5 \
        --path '/v1/availability/SKU-1?location=L' --key osk_...

Request ``i`` is due at ``start + i / rate``, whatever happened to the ones before it. Each of
``--connections`` keep-alive connections takes the next due request as soon as it is free and
sends it at its time, so a server stall does not slow the schedule down: the requests that fall
due during the stall wait, and their latency is counted from when they were due, not from when a
connection got round to sending them (no coordinated omission). A request sent ahead of its time
(the timer wakes up to 1 ms early) is counted from when it was sent.

Prints one JSON line: rate asked and achieved, statuses, p50/p90/p99/max in ms, and how late the
generator's own loop woke up (its p99/max: a busy generator would show here, not as server time).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import sys
import time
from collections import Counter
from urllib.parse import urlsplit

import uvloop

EARLY = 0.001  # wake this much before a request is due: timers fire late, never early enough


def build_request(host: str, method: str, path: str, key: str | None, body: bytes) -> bytes:
    """The exact bytes of one keep-alive HTTP/1.1 request."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    if key:
        lines.append(f"Authorization: Bearer {key}")
    if body or method != "GET":
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def read_response(reader: asyncio.StreamReader) -> int:
    """Read one response (Content-Length framed); its status code."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
        elif name.strip().lower() == b"transfer-encoding":
            raise RuntimeError("chunked responses are not supported")
    if length:
        await reader.readexactly(length)
    return status


class Paced:
    """One paced run: the schedule, the connections and what they measured."""

    def __init__(self, args: argparse.Namespace) -> None:
        parts = urlsplit(args.url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        body = open(args.body_file, "rb").read() if args.body_file else b""  # noqa: SIM115
        self.request = build_request(
            f"{self.host}:{self.port}", args.method, args.path, args.key, body
        )
        self.rate, self.total = args.rate, int(args.rate * args.seconds)
        self.connections = args.connections
        self.next = 0
        self.start = 0.0
        self.latencies: list[float] = []
        self.statuses: Counter[int] = Counter()
        self.errors = 0
        self.generator_lag: list[float] = []

    async def connection(self) -> None:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            while self.next < self.total:
                due = self.start + self.next / self.rate
                self.next += 1
                wait = due - time.perf_counter()
                if wait > EARLY:
                    await asyncio.sleep(wait - EARLY)
                sent = time.perf_counter()
                writer.write(self.request)
                try:
                    status = await read_response(reader)
                except (OSError, asyncio.IncompleteReadError):
                    self.errors += 1
                    return
                self.latencies.append(time.perf_counter() - min(sent, due))
                self.statuses[status] += 1
        finally:
            writer.close()

    async def probe(self) -> None:
        """The generator's own loop lag, every 10 ms, while the run lasts."""
        while True:
            asked = time.perf_counter()
            await asyncio.sleep(0.01)
            self.generator_lag.append(max(0.0, time.perf_counter() - asked - 0.01))

    async def run(self) -> dict[str, object]:
        self.start = time.perf_counter() + 0.2  # time to connect first
        probe = asyncio.create_task(self.probe())
        await asyncio.gather(*(self.connection() for _ in range(self.connections)))
        elapsed = time.perf_counter() - self.start
        probe.cancel()
        ms = sorted(x * 1000 for x in self.latencies)

        def pct(values: list[float], p: float) -> float:
            return values[min(len(values) - 1, int(len(values) * p / 100))] if values else 0.0

        lag = sorted(x * 1000 for x in self.generator_lag)
        return {
            "rate": self.rate,
            "rps": len(ms) / elapsed,
            "requests": len(ms),
            "errors": self.errors,
            "seconds": elapsed,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "p50_ms": pct(ms, 50),
            "p90_ms": pct(ms, 90),
            "p99_ms": pct(ms, 99),
            "max_ms": ms[-1] if ms else 0.0,
            "mean_ms": statistics.fmean(ms) if ms else 0.0,
            "generator_lag_p99_ms": pct(lag, 99),
            "generator_lag_max_ms": lag[-1] if lag else 0.0,
        }


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m loadtests.paced", description=__doc__)
    p.add_argument("--url", required=True, help="base URL (127.0.0.1 only)")
    p.add_argument("--rate", type=float, required=True, help="requests per second")
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--method", default="GET")
    p.add_argument("--path", default="/healthz")
    p.add_argument("--body-file", help="request body (sent as application/json)")
    p.add_argument("--key", help="API key, sent as a Bearer token")
    args = p.parse_args(argv)
    if urlsplit(args.url).hostname not in ("127.0.0.1", "localhost"):
        p.error("load is only ever sent to this machine (127.0.0.1)")
    if not 0 < args.rate <= 1_000_000 or not 0 < args.seconds <= 600:
        p.error("--rate must be in (0, 1e6] and --seconds in (0, 600]")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    gc.disable()  # the generator allocates nothing cyclic; its collections would read as server time
    result = uvloop.run(Paced(args).run())
    print("paced-summary " + json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
