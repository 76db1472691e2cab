"""A sourcing hold: one order held across several locations, all or nothing.

The locations' keys live in different partitions, so the hold is a cross-partition operation
(../DESIGN.md "Cross-partition operations"): a record in its own partition (the document below,
kept by the Lua scripts as JSON) names every part before any is held; each part is an ordinary
reservation held by a script keyed by the part's reservation id, so replaying it is harmless;
undoing a part releases it, or voids its id when it was never held. Whoever drives the hold (the
serving process, or the worker's courier once the lease has passed) moves the record through:

    pending --(every part held)--> held --(release)--> released
    pending --(a part could not be held)--> compensating --(parts undone)--> pending (next
        attempt, re-planned) | failed (no option left; ``shortages`` says why)

Only ``pending -> held`` and ``pending -> compensating`` race, and both are one script on the
record, so a hold is never reported held while its parts are being undone.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Literal

import msgspec

HoldStatus = Literal["pending", "compensating", "held", "failed", "released"]
FINISHED: frozenset[str] = frozenset({"held", "failed", "released"})


class HoldPart(msgspec.Struct, kw_only=True):
    """One location's share: the reservation id it is (or will be) held as, and its lines."""

    reservation: str
    location: str
    lines: list[tuple[str, int]]
    distance_km: float | None = None


class HoldRequest(msgspec.Struct, kw_only=True):
    """What was asked, as the courier needs it to finish the hold without the caller."""

    lines: list[tuple[str, int]]
    fulfillment: Literal["pickup", "ship"]
    ttl_ms: int
    allow_partial: bool = False
    channel: str | None = None
    ref: str | None = None


class SourcingHold(msgspec.Struct, kw_only=True):
    """The record of a sourcing hold as the scripts keep it (times in ms, Redis clock).

    ``parts`` are the current attempt's; ``lease_until`` is when the courier may take over an
    unfinished hold whose driver went quiet; ``shortages`` (``[sku, requested, available]``) is
    set when it failed."""

    id: str
    status: HoldStatus
    attempt: int
    request: HoldRequest
    why: str
    actor: str
    created_at: int
    updated_at: int
    lease_until: int
    owner: str | None = None
    owner_role: str | None = None
    shortages: list[tuple[str, int, int]] | None = None
    # None when it failed at once (no option for a call with an Idempotency-Key).
    parts: list[HoldPart] = msgspec.field(default_factory=list)


decode_hold = msgspec.json.Decoder(SourcingHold).decode
encode_hold = msgspec.json.Encoder().encode

# How many attempts (plan, hold, and on a lost race undo and re-plan) a serving call makes
# before it gives up with a 409.
MAX_ATTEMPTS = 3


def record_partition(digest: str, partitions: int) -> int:
    """The partition of a hold's record when the call carries an Idempotency-Key: derived from
    the key (``crc32(digest) % P``), so a replay finds the recorded reply there."""
    return zlib.crc32(digest.encode()) % partitions


def parts_of(
    allocations: Sequence[tuple[str, float | None, Sequence[tuple[str, int]]]],
    new_id: Callable[[str], str],
) -> list[HoldPart]:
    """One part per allocation ``(location, distance_km, lines)``, each with a fresh reservation
    id from ``new_id(location)``."""
    return [
        HoldPart(reservation=new_id(loc), location=loc, lines=list(lines), distance_km=dist)
        for loc, dist, lines in allocations
    ]


def summed_shortages(
    order: Sequence[tuple[str, int]], available: Sequence[Mapping[str, int]]
) -> list[tuple[str, int, int]]:
    """``[sku, requested, available]`` for each sku of ``order`` the candidates together cannot
    cover (``available`` is each candidate's channel availability per sku); when together they
    could (no option fits within the split bound), every line with its summed availability."""
    totals = [(sku, qty, sum(max(0, a.get(sku, 0)) for a in available)) for sku, qty in order]
    short = [line for line in totals if line[2] < line[1]]
    return short or totals


def clip_to(
    order: Sequence[tuple[str, int]], available: Sequence[Mapping[str, int]]
) -> list[tuple[str, int]]:
    """``order`` cut down to what the candidates hold together (lines with nothing dropped): what
    ``allow_partial`` plans for when the whole order cannot be sourced."""
    out = []
    for sku, qty in order:
        total = sum(max(0, a.get(sku, 0)) for a in available)
        if min(qty, total) > 0:
            out.append((sku, min(qty, total)))
    return out
