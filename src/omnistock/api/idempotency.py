"""The Idempotency-Key header, turned into what the scripts record and compare."""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec
from litestar import Request

from omnistock.domain.commands import Idempotency, idempotency_digest
from omnistock.domain.errors import ValidationFailed
from omnistock.domain.roles import Principal

_encode = msgspec.json.Encoder().encode


def idempotency(
    request: Request[Any, Any, Any], who: Principal, body: object
) -> Idempotency | None:
    """None without the header. The request is identified by method, path and the decoded body,
    so formatting differences of the same JSON do not count as a different request."""
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not 1 <= len(key) <= 255:
        raise ValidationFailed("Idempotency-Key", "must be 1-255 characters")
    fingerprint = hashlib.blake2b(digest_size=16)
    fingerprint.update(f"{request.method} {request.url.path}\n".encode())
    fingerprint.update(_encode(body))
    return Idempotency(
        key=key, digest=idempotency_digest(who.id, key), body_hash=fingerprint.hexdigest()
    )
