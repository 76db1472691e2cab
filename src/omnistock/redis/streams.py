"""The partition streams: creating them, measuring the unpersisted backlog, trimming them.

A partition's stream doubles as its "ready" marker: scripts refuse to act on a partition whose
stream does not exist (see _lib.lua), so streams are created only once Redis holds the state
(fresh install, or after a rebuild).
"""

from __future__ import annotations

from typing import Any

from redis.exceptions import ResponseError

from omnistock.redis import keys
from omnistock.redis.scripts import Scripts

GROUP = keys.PERSISTER_GROUP


def parse_id(raw: bytes | str) -> tuple[int, int]:
    """``b"1763892000123-4"`` -> ``(1763892000123, 4)``."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def format_id(ms: int, seq: int) -> str:
    return f"{ms}-{seq}"


async def ensure_streams(
    client: Any, partitions: int, after: dict[int, tuple[int, int]] | None = None
) -> None:
    """Create every partition stream with the persister's group (idempotent). ``after`` gives,
    per partition, the last id already persisted: new ids will be greater, and older ones count
    as deleted (so stream readers holding an older cursor know they missed entries)."""
    after = after or {}
    async with client.pipeline(transaction=False) as pipe:
        for p in range(partitions):
            pipe.xgroup_create(keys.stream(p), GROUP, id="0", mkstream=True)
        results = await pipe.execute(raise_on_error=False)
    for result in results:
        if isinstance(result, ResponseError) and "BUSYGROUP" not in str(result):
            raise result
    if after:
        async with client.pipeline(transaction=False) as pipe:
            for p, (ms, seq) in after.items():
                last = format_id(ms, seq)
                pipe.execute_command("XSETID", keys.stream(p), last, "MAXDELETEDID", last)
            results = await pipe.execute(raise_on_error=False)
        for result in results:
            # The stream already has later entries: nothing to move.
            if isinstance(result, ResponseError) and "smaller" not in str(result):
                raise result


async def backlog(client: Any, partitions: int) -> int:
    """Entries not yet persisted: undelivered to the persister group plus delivered unacked."""
    async with client.pipeline(transaction=False) as pipe:
        for p in range(partitions):
            pipe.xinfo_groups(keys.stream(p))
        results = await pipe.execute(raise_on_error=False)
    total = 0
    for p, groups in enumerate(results):
        if isinstance(groups, ResponseError):
            continue  # stream missing: not ready, nothing pending
        for group in groups:
            if _text(group.get("name")) != GROUP:
                continue
            lag = group.get("lag")
            if lag is None:  # Redis cannot tell after some deletions: count what is after it
                lag = await _undelivered(client, p, group.get("last-delivered-id") or b"0-0")
            total += int(lag) + int(group.get("pending", 0))
    return total


async def _undelivered(client: Any, p: int, last_delivered: bytes) -> int:
    entries = await client.xrange(keys.stream(p), min=b"(" + _bytes(last_delivered), count=100_000)
    return len(entries)


async def trim(client: Any, scripts: Scripts, partitions: int, retention_ms: int) -> int:
    """Drop entries that are both persisted (acked by the persister group) and older than the
    retention window kept for stream resume. Never drops an unpersisted entry."""
    seconds, micros = await client.time()
    horizon = seconds * 1000 + micros // 1000 - retention_ms
    async with client.pipeline(transaction=False) as pipe:
        for p in range(partitions):
            pipe.xinfo_groups(keys.stream(p))
            pipe.xpending(keys.stream(p), GROUP)
        results = await pipe.execute(raise_on_error=False)
    trimmed = 0
    for p in range(partitions):
        groups, pending = results[2 * p], results[2 * p + 1]
        if isinstance(groups, ResponseError) or isinstance(pending, ResponseError):
            continue
        group = next((g for g in groups if _text(g.get("name")) == GROUP), None)
        if group is None:
            continue
        # Everything below the first pending entry and up to the last delivered one is persisted.
        safe = parse_id(group.get("last-delivered-id") or b"0-0")
        safe = (safe[0], safe[1] + 1)
        if pending and pending.get("pending") and pending.get("min"):
            safe = min(safe, parse_id(pending["min"]))
        minid = min(safe, (horizon, 0))
        if minid > (0, 0):
            reply = await scripts.trim(client, [keys.stream(p)], [format_id(*minid)])
            trimmed += int(reply.payload)
    return trimmed


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()
