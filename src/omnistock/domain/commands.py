"""Commands: what a caller asks the live state to do (adjust, count, hold), and the
Idempotency-Key that makes a retry of it harmless. Pure types, shared by the API, the importer and
the Redis adapter that runs them."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import NotRequired, TypedDict

import msgspec


class Idempotency(msgspec.Struct, frozen=True):
    """An Idempotency-Key as the scripts need it: who sent it, and the request it was sent with."""

    key: str
    digest: str
    body_hash: str


# A request's Idempotency-Key, built only when the use case needs it (so, e.g., a bad key on an
# unknown reservation still answers 404 first).
IdemOf = Callable[[], Idempotency | None]


class Adjustment(msgspec.Struct, frozen=True):
    location: str
    sku: str
    delta: int
    reason: str
    ref: str | None = None
    # "unsellable": unsellable changes with on_hand (a return in bad condition, a write-off).
    state: str = "sellable"


class Move(msgspec.Struct, frozen=True):
    """Units on hand moved between sellable and unsellable (``to`` names the state they enter)."""

    location: str
    sku: str
    qty: int
    to: str  # "unsellable" | "sellable"
    reason: str
    ref: str | None = None


class Hold(TypedDict):
    """What a reservation holds (the arguments of ``StockStore.reserve``)."""

    reservation_id: str
    location: str
    lines: Sequence[tuple[str, int]]  # distinct skus
    ttl_seconds: int
    channel: str | None
    ref: str | None
    allow_partial: bool
    actor: str
    idem: Idempotency | None
    owner: NotRequired[str]  # the creating API key's id and role (who may act on it: roles.py)
    owner_role: NotRequired[str]


class Count(msgspec.Struct, frozen=True):
    """An absolute on_hand; ``safety_stock`` None keeps the position's own value, -1 clears it."""

    location: str
    sku: str
    on_hand: int
    safety_stock: int | None = None
    expected_version: int | None = None
    reason: str = "count"
    ref: str | None = None


def idempotency_digest(principal_id: str, idempotency_key: str) -> str:
    """A short fixed-size name for an Idempotency-Key, scoped to the API key that sent it."""
    return hashlib.blake2b(
        f"{principal_id}\n{idempotency_key}".encode(), digest_size=16
    ).hexdigest()
