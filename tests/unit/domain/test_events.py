"""Stream events as consumers decode them: MessagePack arrays in the order the scripts write."""

from __future__ import annotations

import msgspec
import pytest

from omnistock.domain.events import (
    IDEMPOTENCY,
    POSITION,
    RESERVATION,
    RESERVATION_KIND,
    IdempotencyEvent,
    PositionEvent,
    decode_idempotency,
    decode_position,
)
from omnistock.domain.stock import MAX_QUANTITY

# One position event as a script appends it: fields in this order (see PositionEvent).
SCRIPT_ORDER = [
    "loc-1", "sku-1", "reserve", "reservation", "order-9", "web-shop", "idem-1",
    "r3-abcdefghijklmnopqrst", 0, 2, 10, 2, 1, -1, 8, 7, "in_stock", "in_stock", 1_795_000_000_000,
]  # fmt: skip


def test_field_names_are_one_byte() -> None:
    assert (POSITION, RESERVATION, IDEMPOTENCY, RESERVATION_KIND) == (b"p", b"r", b"i", b"k")


def test_position_event_decodes_in_script_order() -> None:
    event = decode_position(msgspec.msgpack.encode(SCRIPT_ORDER))
    assert event == PositionEvent(
        location="loc-1",
        sku="sku-1",
        kind="reserve",
        reason="reservation",
        ref="order-9",
        actor="web-shop",
        idempotency_key="idem-1",
        reservation_id="r3-abcdefghijklmnopqrst",
        delta_on_hand=0,
        delta_reserved=2,
        on_hand=10,
        reserved=2,
        safety_stock=1,
        own_safety_stock=-1,
        version=8,
        available=7,
        status="in_stock",
        prev_status="in_stock",
        ts=1_795_000_000_000,
    )


@pytest.mark.parametrize(
    "event",
    [
        pytest.param(
            PositionEvent(
                "l", "s", "adjust", "sale", "", "pos", "", "", -MAX_QUANTITY, 0,
                0, 0, 0, 0, 1, 0, "out_of_stock", "limited", 0,
            ),
            id="position-empty-strings-negative-delta",
        ),
        pytest.param(
            PositionEvent(
                "l", "s", "set", "count", "", "erp", "", "", MAX_QUANTITY, 0,
                MAX_QUANTITY, 0, 0, 0, 2**53, MAX_QUANTITY, "in_stock", "out_of_stock", 2**41,
            ),
            id="position-at-the-caps",
        ),
    ],
)  # fmt: skip
def test_position_event_round_trip(event: PositionEvent) -> None:
    assert decode_position(msgspec.msgpack.encode(event)) == event


@pytest.mark.parametrize(
    ("index", "value"),
    [
        pytest.param(16, "sold_out", id="unknown-status"),
        pytest.param(17, "", id="empty-prev-status"),
        pytest.param(8, "1", id="delta-as-text"),
        pytest.param(18, 1.5, id="fractional-ts"),
    ],
)
def test_position_event_rejects_what_the_scripts_never_write(index: int, value: object) -> None:
    fields: list[object] = list(SCRIPT_ORDER)
    fields[index] = value
    with pytest.raises(msgspec.ValidationError):
        decode_position(msgspec.msgpack.encode(fields))


def test_position_event_rejects_a_short_array() -> None:
    with pytest.raises(msgspec.ValidationError):
        decode_position(msgspec.msgpack.encode(SCRIPT_ORDER[:-1]))


@pytest.mark.parametrize(
    "event",
    [
        pytest.param(
            IdempotencyEvent("idem:k1:abc", "h", 201, "", 86_400_000, 1, '{"id":"r1"}'),
            id="only-event",
        ),
        pytest.param(
            IdempotencyEvent("idem:k1:abc", "h", 409, "1795000000000-3", 5, 2, ""),
            id="with-first",
        ),
    ],
)
def test_idempotency_event_round_trip(event: IdempotencyEvent) -> None:
    assert decode_idempotency(msgspec.msgpack.encode(event)) == event
    as_array = [
        event.key,
        event.hash,
        event.code,
        event.first,
        event.ttl_ms,
        event.ts,
        event.payload,
    ]
    assert decode_idempotency(msgspec.msgpack.encode(as_array)) == event


def test_position_event_with_stock_states_and_without() -> None:
    """Entries written before stock states end at ts and decode with none; newer ones carry
    delta_unsellable, unsellable, delta_incoming, incoming last."""
    old = decode_position(msgspec.msgpack.encode(SCRIPT_ORDER))
    assert (old.delta_unsellable, old.unsellable, old.delta_incoming, old.incoming) == (0, 0, 0, 0)
    new = decode_position(msgspec.msgpack.encode([*SCRIPT_ORDER, -2, 3, 5, 9]))
    assert (new.delta_unsellable, new.unsellable, new.delta_incoming, new.incoming) == (-2, 3, 5, 9)
    assert new.ts == old.ts
    with pytest.raises(msgspec.ValidationError):
        decode_position(msgspec.msgpack.encode([*SCRIPT_ORDER, "2", 3, 5, 9]))
