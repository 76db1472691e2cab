"""Timestamps: milliseconds since the epoch inside, RFC 3339 UTC with milliseconds outside."""

from __future__ import annotations

import functools
import time
from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


@functools.lru_cache(maxsize=64)
def _second(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def rfc3339(ms: int) -> str:
    """``1763892000123`` -> ``"2025-11-23T10:00:00.123Z"``."""
    seconds, millis = divmod(ms, 1000)
    return f"{_second(seconds)}.{millis:03d}Z"  # strftime once per second, not per call


def now_ms() -> int:
    """Wall-clock milliseconds (the Redis clock is authoritative for stock; this is for the rest)."""
    return time.time_ns() // 1_000_000


def parse_rfc3339(value: str) -> int:
    """Inverse of :func:`rfc3339`, accepting any offset; raises ValueError on bad input."""
    dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return datetime_ms(dt)


def datetime_ms(dt: datetime) -> int:
    """Milliseconds since the epoch of an aware datetime, exactly (float seconds would lose a
    millisecond now and then)."""
    return (dt - _EPOCH) // _MS
