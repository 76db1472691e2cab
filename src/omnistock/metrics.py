"""A small Prometheus registry: counters, gauges and histograms rendered as text exposition.

Per process: with ``--workers N`` each worker keeps its own, labelled with its ``pid``.
"""

from __future__ import annotations

import bisect
import os
from collections import defaultdict
from collections.abc import Callable

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
Labels = tuple[tuple[str, str], ...]


def _fmt_labels(labels: Labels, extra: str = "") -> str:
    parts = [f'{k}="{v}"' for k, v in labels]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


class Counter:
    def __init__(self, name: str, help_: str) -> None:
        self.name, self.help = name, help_
        self.values: dict[Labels, float] = defaultdict(float)

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        self.values[tuple(labels.items())] += amount

    def render(self) -> list[str]:
        out = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
        out += [f"{self.name}{_fmt_labels(k)} {v}" for k, v in sorted(self.values.items())]
        return out


class Gauge:
    """A value read when scraped."""

    def __init__(self, name: str, help_: str, read: Callable[[], float]) -> None:
        self.name, self.help, self.read = name, help_, read

    def render(self) -> list[str]:
        return [
            f"# HELP {self.name} {self.help}",
            f"# TYPE {self.name} gauge",
            f"{self.name} {self.read()}",
        ]


class Histogram:
    def __init__(self, name: str, help_: str, buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.name, self.help, self.buckets = name, help_, buckets
        self.counts: dict[Labels, list[int]] = {}
        self.sums: dict[Labels, float] = defaultdict(float)

    def observe(self, value: float, **labels: str) -> None:
        key = tuple(labels.items())
        counts = self.counts.get(key)
        if counts is None:
            counts = self.counts[key] = [0] * (len(self.buckets) + 1)
        counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sums[key] += value

    def render(self) -> list[str]:
        out = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        for key, counts in sorted(self.counts.items()):
            running = 0
            for bound, n in zip((*self.buckets, float("inf")), counts, strict=True):
                running += n
                le = 'le="+Inf"' if bound == float("inf") else f'le="{bound!r}"'
                out.append(f"{self.name}_bucket{_fmt_labels(key, le)} {running}")
            out.append(f"{self.name}_sum{_fmt_labels(key)} {self.sums[key]}")
            out.append(f"{self.name}_count{_fmt_labels(key)} {running}")
        return out


class Metrics:
    """Everything omnistock exports."""

    def __init__(self) -> None:
        self.requests = Counter(
            "omnistock_http_requests_total", "HTTP requests by route and status"
        )
        self.latency = Histogram("omnistock_http_request_seconds", "HTTP request latency by route")
        self.reservations = Counter("omnistock_reservations_total", "Reservation outcomes")
        self.expired = Counter(
            "omnistock_reservations_expired_total", "Reservations expired by the sweeper"
        )
        # supervise: background loops, retention and the persister's quarantine
        self.restarts = Counter(
            "omnistock_background_restarts_total", "Restarts of a failed background loop"
        )
        self.pruned = Counter(
            "omnistock_pruned_rows_total", "Rows the pruning loop deleted from Postgres, by table"
        )
        self.quarantined = Counter(
            "omnistock_persister_quarantined_total",
            "Stream entries the persister could not write and set aside in Postgres",
        )
        # ratelimit: 429s per role, requests let through while Redis did not answer
        self.rate_limited = Counter(
            "omnistock_rate_limited_total", "Requests refused by rate limits (429), by role"
        )
        self.rate_limit_unchecked = Counter(
            "omnistock_rate_limit_unchecked_total",
            "Requests let through unchecked because Redis did not answer the limiter (fail open)",
        )
        self.gauges: list[Gauge] = []
        self.extra: list[Counter | Histogram] = []  # registered by their owners (looplag)

    def gauge(self, name: str, help_: str, read: Callable[[], float]) -> None:
        self.gauges.append(Gauge(name, help_, read))

    def render(self) -> str:
        lines = [f'# omnistock metrics of worker pid="{os.getpid()}"']
        metrics: list[Counter | Histogram | Gauge] = [
            self.requests,
            self.latency,
            self.reservations,
            self.expired,
            self.restarts,
            self.pruned,
            self.quarantined,
            self.rate_limited,
            self.rate_limit_unchecked,
            *self.extra,
            *self.gauges,
        ]
        for metric in metrics:
            lines += metric.render()
        return "\n".join(lines) + "\n"
