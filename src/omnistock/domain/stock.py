"""Stock positions: what is on hand, held and promisable for one sku at one location."""

from __future__ import annotations

from typing import Literal

import msgspec

# API.md: quantities never exceed 10^12 in any field. Lua keeps numbers as doubles and cjson prints
# integers >= 10^14 in exponent form: this cap keeps every value exact. _lib.lua's MAX_QUANTITY
# is the same number (tests/lua/test_quantity_caps.py checks).
MAX_QUANTITY = 10**12
Status = Literal["in_stock", "limited", "out_of_stock"]
# Stock states (API.md "Stock states"): units on hand are sellable or unsellable.
StockState = Literal["sellable", "unsellable"]
MoveReason = Literal["damaged", "quality_control", "inspection_passed", "repaired", "correction"]
MAX_MOVE_QTY = 10**9
AdjustmentReason = Literal[
    "receipt", "sale", "return", "damage", "correction", "transfer_in", "transfer_out"
]


def available(on_hand: int, reserved: int, safety_stock: int, unsellable: int = 0) -> int:
    """``max(0, on_hand - reserved - safety_stock - unsellable)``: what can still be promised
    (_lib.lua's avail_of computes the same number)."""
    return max(0, on_hand - reserved - safety_stock - unsellable)


def status_of(available_units: int, limited_threshold: int) -> Status:
    """``out_of_stock`` at 0, ``limited`` up to the location's threshold, else ``in_stock``."""
    if available_units <= 0:
        return "out_of_stock"
    if available_units <= limited_threshold:
        return "limited"
    return "in_stock"


class Position(msgspec.Struct, kw_only=True):
    """One sku at one location, as clients see it (``updated_at`` is None before the first change)."""

    sku: str
    location: str
    on_hand: int
    reserved: int
    safety_stock: int
    available: int
    status: Status
    version: int
    updated_at: str | None
    # Units on hand that may not be sold (damaged, in inspection...), and units expected from
    # open supply (and transfers): API.md "Stock states".
    unsellable: int = 0
    incoming: int = 0


def for_channel(pos: Position, fence: int, limited_threshold: int) -> Position:
    """``pos`` as a channel sees it: ``available`` less the channel's fence (never below 0), and
    the status of that. reserve.lua holds against the same number (_lib.lua's avail_of)."""
    if fence <= 0:
        return pos
    avail = max(0, pos.available - fence)
    return msgspec.structs.replace(pos, available=avail, status=status_of(avail, limited_threshold))


def position(
    *,
    location: str,
    sku: str,
    on_hand: int,
    reserved: int,
    safety_stock: int,
    limited_threshold: int,
    version: int,
    updated_at: str | None,
    unsellable: int = 0,
    incoming: int = 0,
) -> Position:
    """Build a :class:`Position`, deriving ``available`` and ``status``."""
    avail = available(on_hand, reserved, safety_stock, unsellable)
    return Position(
        sku=sku,
        location=location,
        on_hand=on_hand,
        reserved=reserved,
        safety_stock=safety_stock,
        available=avail,
        status=status_of(avail, limited_threshold),
        version=version,
        updated_at=updated_at,
        unsellable=unsellable,
        incoming=incoming,
    )
