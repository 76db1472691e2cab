"""Supply: stock expected at a location by an ETA (a purchase order, a production run).

A supply document is kept by the Lua scripts (JSON, in the location's partition) and persisted to
Postgres from its stream events (field ``y``). Each line's outstanding units (``qty - received``,
never below 0) are in the position's ``incoming`` and in its incoming schedule (a sorted set
scored by ETA whose members are ``y:<supply id>:<outstanding>``), so units due by a date are one
range read. Transfers add their members to the same schedules, prefixed by their own kind.

    open --(receive part)--> partially_received --(receive the rest)--> received
    open | partially_received --(cancel)--> cancelled
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from typing import Any, Literal

import msgspec

from omnistock.domain.clock import parse_rfc3339, rfc3339
from omnistock.domain.errors import ValidationFailed
from omnistock.domain.reservations import sum_lines

SupplyStatus = Literal["open", "partially_received", "received", "cancelled"]
SupplyKind = Literal["purchase_order", "production", "other"]
OPEN: frozenset[str] = frozenset({"open", "partially_received"})
MAX_LINES = 1000
MAX_LINE_QTY = 10**9
# An ETA (and `by`) is an RFC 3339 date-time of the years 2000-2099 (a typo such as 20266 is a
# 422, not a date no one can read back). The pattern states every rule: real calendar dates
# only (29 February of leap years), hours 00-23, offsets within +-23:59, up to 9 fraction digits.
_YEAR_DAY = (
    "20[0-9]{2}-((0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])|(0[13-9]|1[0-2])-(29|30)"
    "|(0[13578]|1[02])-31)|20([02468][048]|[13579][26])-02-29"
)
DATE_TIME_PATTERN = (
    f"^({_YEAR_DAY})T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]([.][0-9]{{1,9}})?"
    "(Z|z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])(?!\\n)$"
)
_DATE_TIME = re.compile(DATE_TIME_PATTERN)
# What the pattern admits, with a day of offsets to spare.
MIN_ETA_MS = 946_598_400_000  # 1999-12-31T00:00:00Z
MAX_ETA_MS = 4_102_531_200_000  # 2100-01-02T00:00:00Z
SCHEDULE_PREFIX = "y"  # a supply's members in the incoming schedules: y:<id>:<outstanding>


class SupplyLine(msgspec.Struct, kw_only=True):
    sku: str
    qty: int
    received: int = 0

    @property
    def outstanding(self) -> int:
        return max(0, self.qty - self.received)


class StoredSupply(msgspec.Struct, kw_only=True):
    """A supply as the scripts keep it (times in ms)."""

    id: str
    location: str
    eta: int
    status: SupplyStatus
    kind: SupplyKind
    created_at: int
    updated_at: int
    actor: str
    lines: list[SupplyLine]
    ref: str | None = None


decode_supply = msgspec.json.Decoder(StoredSupply).decode


class SupplyView(msgspec.Struct, kw_only=True):
    """A supply as clients see it (API.md "Supply")."""

    id: str
    location: str
    eta: str
    status: SupplyStatus
    kind: SupplyKind
    ref: str | None
    created_at: str
    updated_at: str
    lines: list[SupplyLine]


def view(doc: StoredSupply) -> SupplyView:
    """The client view of a stored supply."""
    return SupplyView(
        id=doc.id,
        location=doc.location,
        eta=rfc3339(doc.eta),
        status=doc.status,
        kind=doc.kind,
        ref=doc.ref,
        created_at=rfc3339(doc.created_at),
        updated_at=rfc3339(doc.updated_at),
        lines=doc.lines,
    )


def sum_supply_lines(
    lines: Iterable[tuple[str, int]], field: str = "lines"
) -> list[tuple[str, int]]:
    """Merge lines naming the same sku (first appearance keeps its place); a sum past this
    module's MAX_LINE_QTY is a 422 naming the line that passes it."""
    return sum_lines(lines, field, cap=MAX_LINE_QTY)


def parse_eta(field: str, value: str) -> int:
    """An RFC 3339 date-time (as DATE_TIME_PATTERN admits) -> ms; else a 422 naming ``field``."""
    ms = -1
    if _DATE_TIME.search(value) is not None:
        ms = parse_rfc3339(value.replace("z", "Z"))
    if not MIN_ETA_MS <= ms < MAX_ETA_MS:
        raise ValidationFailed(field, "must be an RFC 3339 date-time of the years 2000-2099")
    return ms


def schedule_member(supply_id: str, outstanding: int) -> str:
    """A supply line's member of its position's incoming schedule."""
    return f"{SCHEDULE_PREFIX}:{supply_id}:{outstanding}"


def due_units(members: Iterable[bytes | str]) -> int:
    """The units of incoming schedule members (``<kind>:<id>:<units>``), of any kind."""
    total = 0
    for member in members:
        text = member.decode() if isinstance(member, bytes) else member
        total += int(text.rsplit(":", 1)[1])
    return total


class Due(msgspec.Struct, frozen=True, kw_only=True):
    """What is due at a position by a date: the units with an ETA at or before it, and the
    earliest of those ETAs (ms) with the units due at it (None and 0 when nothing is due)."""

    units: int = 0
    next_eta: int | None = None
    next_units: int = 0


def due_with_scores(reply: Sequence[Any]) -> Due:
    """A schedule range read WITHSCORES -> :class:`Due`. RESP2 gives a flat
    ``[member, score, ...]``, RESP3 (and some clients) ``[(member, score), ...]``: both read."""
    pairs: Iterable[Sequence[Any]]
    if reply and isinstance(reply[0], (list, tuple)):
        pairs = reply
    else:
        pairs = zip(reply[::2], reply[1::2], strict=True)
    units = next_units = 0
    next_eta: int | None = None
    for member, score in pairs:
        qty = due_units((member,))
        units += qty
        at = float(score)
        if not math.isfinite(at):
            continue  # no date (a member scored -inf): counted, never the next ETA
        eta = int(at)  # ms below 2**53: a double holds them exactly
        if next_eta is None or eta < next_eta:
            next_eta, next_units = eta, qty
        elif eta == next_eta:
            next_units += qty
    return Due(units=units, next_eta=next_eta, next_units=next_units)
