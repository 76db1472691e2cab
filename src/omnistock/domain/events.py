"""The events the scripts append to the partition streams, as consumers decode them.

A stream entry has one field, named by its kind:
- ``p``: a position changed; the value is a MessagePack array, :class:`PositionEvent`;
- ``r``: a reservation changed; the value is the reservation document (JSON), and field ``k``
  says what happened (reserve, extend, commit, release, expire);
- ``i``: an idempotent reply was recorded; a MessagePack array, :class:`IdempotencyEvent`;
- ``o``: a sourcing hold (a cross-partition operation) changed; the value is its document (JSON,
  domain/sourcing_holds.py) and field ``k`` says what happened (begin, finish, abort, replan,
  fail, release, claim);
- ``y``: a supply changed; the value is its document (JSON, domain/supply.py) and field ``k``
  says what happened (create, receive, reschedule, cancel);
- ``t``: a transfer's record or shadow changed; the value is that document (JSON,
  domain/transfers.py, its ``side`` says which) and field ``k`` says what happened (create,
  arrive, confirm, close, receive, cancel, withdraw, cancelled, claim).
MessagePack keeps the scripts cheap (numbers are not formatted as text) and decoding fast.
"""

from __future__ import annotations

import msgspec

from omnistock.domain.stock import Status

POSITION, RESERVATION, IDEMPOTENCY, OPERATION = b"p", b"r", b"i", b"o"
SUPPLY = b"y"  # a supply changed: its document (JSON, domain/supply.py); `k` says what happened
TRANSFER = b"t"  # a transfer's record or shadow changed (JSON, domain/transfers.py)
RESERVATION_KIND = b"k"


class PositionEvent(msgspec.Struct, array_like=True, frozen=True):
    """One changed position (the order of fields is the order the scripts write)."""

    location: str
    sku: str
    kind: str  # adjust, set, import, reserve, commit, release, expire, move, supply
    reason: str
    ref: str  # '' when none
    actor: str
    idempotency_key: str  # '' when none
    reservation_id: str  # '' when none
    delta_on_hand: int
    delta_reserved: int
    on_hand: int
    reserved: int
    safety_stock: int  # effective
    own_safety_stock: int  # the position's own; -1 when it has none
    version: int
    available: int
    status: Status
    prev_status: Status
    ts: int  # ms, Redis clock
    # Stock states (issue 13), appended last so entries written before them still decode.
    delta_unsellable: int = 0
    unsellable: int = 0
    delta_incoming: int = 0
    incoming: int = 0


class IdempotencyEvent(msgspec.Struct, array_like=True, frozen=True):
    """A recorded reply: its Redis key, request hash, code, first event id, ttl, time, payload."""

    key: str
    hash: str
    code: int
    first: str  # '' when this event is the only one the call appended
    ttl_ms: int
    ts: int
    payload: str


decode_position = msgspec.msgpack.Decoder(PositionEvent).decode
decode_idempotency = msgspec.msgpack.Decoder(IdempotencyEvent).decode
