"""Stream entries as flat ``{name: text}`` dicts with short names, for readable assertions."""

from __future__ import annotations

import json

from omnistock.domain.events import (
    IDEMPOTENCY,
    OPERATION,
    POSITION,
    RESERVATION,
    RESERVATION_KIND,
    SUPPLY,
    TRANSFER,
    decode_idempotency,
    decode_position,
)
from omnistock.domain.reservations import decode_reservation
from omnistock.domain.sourcing_holds import decode_hold
from omnistock.domain.supply import decode_supply

_POSITION_NAMES = {
    "location": "loc", "sku": "sku", "kind": "kind", "reason": "reason", "ref": "ref",
    "actor": "actor", "idempotency_key": "idem", "reservation_id": "rid", "delta_on_hand": "doh",
    "delta_reserved": "dr", "on_hand": "oh", "reserved": "r", "safety_stock": "ss",
    "own_safety_stock": "oss", "version": "v", "available": "a", "status": "st",
    "prev_status": "pst", "ts": "ts", "delta_unsellable": "du", "unsellable": "u",
    "delta_incoming": "din", "incoming": "in",
}  # fmt: skip


def event_fields(fields: dict[bytes, bytes]) -> dict[str, str]:
    """``t`` is ``p``, ``r``, ``o`` (sourcing hold), ``y`` (supply), ``t`` (transfer) or ``i``; a position's own
    safety stock is '' when it has none."""
    if POSITION in fields:
        event = decode_position(fields[POSITION])
        out = {"t": "p"} | {
            short: str(getattr(event, name)) for name, short in _POSITION_NAMES.items()
        }
        if event.own_safety_stock < 0:
            out["oss"] = ""
        return out
    if RESERVATION in fields:
        doc = decode_reservation(fields[RESERVATION])
        return {
            "t": "r",
            "rid": doc.id,
            "loc": doc.location,
            "st": doc.status,
            "kind": fields[RESERVATION_KIND].decode(),
            "doc": fields[RESERVATION].decode(),
        }
    if OPERATION in fields:
        hold = decode_hold(fields[OPERATION])
        return {
            "t": "o", "id": hold.id, "st": hold.status, "attempt": str(hold.attempt),
            "kind": fields[RESERVATION_KIND].decode(),
        }  # fmt: skip
    if SUPPLY in fields:
        supply = decode_supply(fields[SUPPLY])
        return {
            "t": "y", "id": supply.id, "loc": supply.location, "st": supply.status,
            "kind": fields[RESERVATION_KIND].decode(), "doc": fields[SUPPLY].decode(),
        }  # fmt: skip
    if TRANSFER in fields:  # a transfer's record or its `to` side: both carry id and status
        doc = json.loads(fields[TRANSFER])
        return {
            "t": "t", "id": doc["id"], "st": doc["status"],
            "kind": fields[RESERVATION_KIND].decode(), "doc": fields[TRANSFER].decode(),
        }  # fmt: skip
    idem = decode_idempotency(fields[IDEMPOTENCY])
    return {
        "t": "i", "key": idem.key, "hash": idem.hash, "code": str(idem.code), "first": idem.first,
        "ttl": str(idem.ttl_ms), "ts": str(idem.ts), "payload": idem.payload,
    }  # fmt: skip
