"""Reservations: holds on stock at one location until committed, released or expired."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, get_args

import msgspec

from omnistock.domain.clock import rfc3339
from omnistock.domain.errors import Shortage, ValidationFailed

ReservationStatus = Literal["active", "committed", "released", "expired"]
Channel = Literal["web", "app", "kiosk", "store", "marketplace"]
CHANNELS: tuple[str, ...] = get_args(Channel)
MAX_LINE_QTY = 1_000_000
# extend may not move expires_at past created_at + this (API.md, "Reservations (additions)").
MAX_LIFETIME_SECONDS = 7 * 24 * 3600


def sum_lines(
    lines: Iterable[tuple[str, int]], field: str = "lines", cap: int = MAX_LINE_QTY
) -> list[tuple[str, int]]:
    """Merge lines naming the same sku (first appearance keeps its place). A sku whose lines sum
    past ``cap`` is a 422 naming the line that passes it (``lines[3].qty``)."""
    totals: dict[str, int] = {}
    for index, (sku, qty) in enumerate(lines):
        total = totals.get(sku, 0) + qty
        if total > cap:
            raise ValidationFailed(
                f"{field}[{index}].qty", f"the lines naming sku {sku!r} sum to {total}, over {cap}"
            )
        totals[sku] = total
    return list(totals.items())


class StoredReservation(msgspec.Struct, kw_only=True):
    """A reservation as the Lua scripts keep it: times in ms, lines ``[sku, qty, reserved, taken]``
    (``taken`` is what a commit took; 0 until then)."""

    id: str
    location: str
    status: ReservationStatus
    actor: str
    created_at: int
    expires_at: int
    lines: list[tuple[str, int, int, int]]
    channel: str | None = None
    ref: str | None = None
    finished_at: int | None = None
    # The API key that created it and its role (absent on reservations made before round 2).
    owner: str | None = None
    owner_role: str | None = None
    # The sourcing hold this reservation is a part of (POST /v1/sourcing/reservations).
    sourcing: str | None = None


decode_reservation = msgspec.json.Decoder(StoredReservation).decode
"""A reservation document as the scripts write it (JSON) -> :class:`StoredReservation`."""


class ReservationLine(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One sku of a reservation: ``qty`` asked, ``reserved`` held, ``committed`` taken on commit."""

    sku: str
    qty: int
    reserved: int
    committed: int | None = None


class Reservation(msgspec.Struct, kw_only=True):
    """A reservation as clients see it."""

    id: str
    location: str
    lines: list[ReservationLine]
    status: ReservationStatus
    channel: str | None
    ref: str | None
    created_at: str
    expires_at: str
    finished_at: str | None = None
    sourcing: str | None = None


def present(stored: StoredReservation) -> Reservation:
    """Render a stored reservation for clients (RFC 3339 times, named line fields)."""
    committed = stored.status == "committed"
    lines = [
        ReservationLine(sku=sku, qty=qty, reserved=held, committed=taken if committed else None)
        for sku, qty, held, taken in stored.lines
    ]
    return Reservation(
        id=stored.id,
        location=stored.location,
        lines=lines,
        status=stored.status,
        channel=stored.channel,
        ref=stored.ref,
        created_at=rfc3339(stored.created_at),
        expires_at=rfc3339(stored.expires_at),
        finished_at=rfc3339(stored.finished_at) if stored.finished_at is not None else None,
        sourcing=stored.sourcing,
    )


class ShortageLine(msgspec.Struct):
    sku: str
    requested: int
    available: int


def shortage(lines: list[tuple[str, int, int]]) -> Shortage:
    """The 409 for a reservation that cannot be held, listing each short sku."""
    items = [ShortageLine(sku=s, requested=r, available=a) for s, r, a in lines]
    names = ", ".join(f"{i.sku} (requested {i.requested}, available {i.available})" for i in items)
    return Shortage(f"not enough stock to hold: {names}", shortages=items)
