"""Transfers: stock on its way from one location to another (API.md "Transfers").

A transfer spans two locations, so two partitions (DESIGN.md "Cross-partition operations"). The
record lives in the partition of ``from`` (its id names it: ``t<p>-<token>``); the units leave
``from`` in the same script that writes it. The ``to`` side is a shadow document keyed by the id in
the partition of ``to``: writing it (arrival, once) adds the lines to ``to``'s ``incoming`` and
schedules (members ``t:<id>:<outstanding>``), and receipts change it there. The record stays
pending (in its partition's pending set, with a lease) until the ``to`` side is settled; the
worker's courier finishes whatever a crash left:

    record: in_transit (pending) --(shadow written; confirm)--> in_transit
            in_transit --(cancel)--> cancelling (pending) --(shadow withdrawn)--> cancelled
                                     cancelling --(shadow has receipts: refused)--> in_transit
    shadow: in_transit --(receive part)--> partially_received --(the rest)--> received
            in_transit --(withdrawn, nothing received)--> cancelled

What clients see (``status``) merges both: ``cancelled`` once the record is; else the shadow's
status; ``in_transit`` before the shadow exists. A transfer without ``eta`` is scheduled at
+infinity: its units are in ``incoming`` but never in ``incoming_by`` (no promise without a date).
"""

from __future__ import annotations

from typing import Literal

import msgspec

from omnistock.domain.clock import rfc3339
from omnistock.domain.supply import SupplyLine

TransferStatus = Literal["in_transit", "partially_received", "received", "cancelled"]
RecordStatus = Literal["in_transit", "cancelling", "cancelled", "received"]
Side = Literal["from", "to"]
OPEN: frozenset[str] = frozenset({"in_transit", "partially_received"})
SCHEDULE_PREFIX = "t"  # a transfer's members in the incoming schedules: t:<id>:<outstanding>
TransferLine = SupplyLine  # sku, qty, received (outstanding = qty - received)


class StoredTransfer(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A transfer document as the scripts keep it (times in ms): the record (``side`` from) or
    the shadow (``side`` to). ``pending`` (record only): the ``to`` side is not settled yet."""

    id: str
    side: Side
    status: str
    from_: str = msgspec.field(name="from")
    to: str
    created_at: int
    updated_at: int
    actor: str
    lines: list[TransferLine]
    eta: int | None = None
    ref: str | None = None
    pending: bool = False
    lease_until: int = 0


decode_transfer = msgspec.json.Decoder(StoredTransfer).decode
encode_transfer = msgspec.json.Encoder().encode


class TransferView(msgspec.Struct, kw_only=True):
    """A transfer as clients see it (API.md "Transfers")."""

    id: str
    from_: str = msgspec.field(name="from")
    to: str
    status: TransferStatus
    eta: str | None
    ref: str | None
    created_at: str
    updated_at: str
    lines: list[TransferLine]


def status_of(record: StoredTransfer | None, shadow: StoredTransfer | None) -> TransferStatus:
    """The status clients see, from the record and the shadow (either may be missing)."""
    if record is not None and record.status == "cancelled":
        return "cancelled"
    if shadow is not None and shadow.status in ("partially_received", "received"):
        return "partially_received" if shadow.status == "partially_received" else "received"
    if record is not None and record.status == "received":
        return "received"
    if record is None and shadow is not None and shadow.status == "cancelled":
        return "cancelled"
    return "in_transit"


def view(record: StoredTransfer | None, shadow: StoredTransfer | None) -> TransferView:
    """The client view of a transfer from its record and shadow (at least one given)."""
    base = record or shadow
    assert base is not None
    lines = shadow.lines if shadow is not None and shadow.status != "cancelled" else base.lines
    updated = max(d.updated_at for d in (record, shadow) if d is not None)
    return TransferView(
        id=base.id,
        from_=base.from_,
        to=base.to,
        status=status_of(record, shadow),
        eta=rfc3339(base.eta) if base.eta is not None else None,
        ref=base.ref,
        created_at=rfc3339(base.created_at),
        updated_at=rfc3339(updated),
        lines=lines,
    )


def schedule_member(transfer_id: str, outstanding: int) -> str:
    """A transfer line's member of its position's incoming schedule at ``to``."""
    return f"{SCHEDULE_PREFIX}:{transfer_id}:{outstanding}"


def schedule_score(eta: int | None) -> float:
    """Where a transfer's units sit in the schedules: its eta, +inf without one."""
    return float("inf") if eta is None else eta
