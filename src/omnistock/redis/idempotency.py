"""Idempotency-Keys in Redis: the claim that binds a key to the body it was first sent with,
and the record key and script arguments every script takes (_lib.lua ``begin``)."""

from __future__ import annotations

from typing import Any

from omnistock.domain.commands import Idempotency
from omnistock.domain.errors import IdempotencyMismatch
from omnistock.redis import keys


async def claim(hot: Any, idem: Idempotency | None, ttl_ms: int) -> None:
    """Bind the key to this request's body wherever it acts; reuse with another body: 422."""
    if idem is None:
        return
    first = await hot.execute_command(
        "SET", keys.idempotency_claim(idem.digest), idem.body_hash, "NX", "GET", "PX", ttl_ms
    )
    if first is not None and first.decode() != idem.body_hash:
        raise IdempotencyMismatch(
            "this Idempotency-Key was first used with a different request; use a new key"
        )


def record_key(p: int, idem: Idempotency | None) -> str:
    """Where the script records its reply (a never-written key without an Idempotency-Key)."""
    if idem is None:
        return keys.unused_idempotency_record(p)
    return keys.idempotency_record(p, idem.digest)


def script_args(idem: Idempotency | None, ttl_ms: int) -> list[Any]:
    """ARGV[2..4] of every script: the body hash, the record's TTL, the key."""
    if idem is None:
        return ["", ttl_ms, ""]
    return [idem.body_hash, ttl_ms, idem.key]
