"""Positions (API.md "Stock positions"): available, status thresholds, the position builder, the cap."""

from __future__ import annotations

import msgspec
import pytest

from omnistock.domain.stock import (
    MAX_QUANTITY,
    Position,
    Status,
    available,
    for_channel,
    position,
    status_of,
)


@pytest.mark.parametrize(
    ("on_hand", "reserved", "safety_stock", "expected"),
    [
        pytest.param(0, 0, 0, 0, id="empty"),
        pytest.param(10, 0, 0, 10, id="all-free"),
        pytest.param(10, 3, 0, 7, id="minus-reserved"),
        pytest.param(10, 0, 4, 6, id="minus-safety"),
        pytest.param(10, 3, 2, 5, id="minus-both"),
        pytest.param(10, 8, 2, 0, id="exactly-zero"),
        pytest.param(10, 9, 2, 0, id="clamped-not-negative"),
        pytest.param(3, 5, 0, 0, id="oversold-till-sale"),
        pytest.param(0, 0, 5, 0, id="safety-over-nothing"),
        pytest.param(MAX_QUANTITY, 0, 0, MAX_QUANTITY, id="cap"),
        pytest.param(MAX_QUANTITY, 1, 1, MAX_QUANTITY - 2, id="cap-minus"),
        pytest.param(MAX_QUANTITY, MAX_QUANTITY, MAX_QUANTITY, 0, id="cap-all-held"),
    ],
)
def test_available(on_hand: int, reserved: int, safety_stock: int, expected: int) -> None:
    assert available(on_hand, reserved, safety_stock) == expected


@pytest.mark.parametrize(
    ("available_units", "threshold", "expected"),
    [
        pytest.param(-5, 2, "out_of_stock", id="negative"),
        pytest.param(0, 2, "out_of_stock", id="zero"),
        pytest.param(1, 2, "limited", id="one-under-threshold"),
        pytest.param(2, 2, "limited", id="at-threshold"),
        pytest.param(3, 2, "in_stock", id="threshold-plus-one"),
        pytest.param(0, 0, "out_of_stock", id="threshold-0:zero"),
        pytest.param(1, 0, "in_stock", id="threshold-0:one"),
        pytest.param(0, 5, "out_of_stock", id="threshold-5:zero"),
        pytest.param(5, 5, "limited", id="threshold-5:at"),
        pytest.param(6, 5, "in_stock", id="threshold-5:above"),
        pytest.param(MAX_QUANTITY, MAX_QUANTITY, "limited", id="threshold-cap:at"),
        pytest.param(MAX_QUANTITY, 2, "in_stock", id="cap"),
    ],
)
def test_status_of(available_units: int, threshold: int, expected: Status) -> None:
    assert status_of(available_units, threshold) == expected


@pytest.mark.parametrize(
    ("on_hand", "reserved", "safety_stock", "threshold", "expected"),
    [
        pytest.param(0, 0, 0, 2, (0, "out_of_stock"), id="unknown-position"),
        pytest.param(10, 0, 0, 2, (10, "in_stock"), id="in-stock"),
        pytest.param(10, 6, 2, 2, (2, "limited"), id="limited-at-threshold"),
        pytest.param(10, 5, 2, 2, (3, "in_stock"), id="in-stock-above-threshold"),
        pytest.param(10, 8, 2, 2, (0, "out_of_stock"), id="all-held"),
        pytest.param(4, 9, 0, 2, (0, "out_of_stock"), id="oversold"),
        pytest.param(1, 0, 0, 0, (1, "in_stock"), id="threshold-0"),
    ],
)
def test_position_derives_available_and_status(
    on_hand: int, reserved: int, safety_stock: int, threshold: int, expected: tuple[int, Status]
) -> None:
    pos = position(
        location="loc-1",
        sku="sku-1",
        on_hand=on_hand,
        reserved=reserved,
        safety_stock=safety_stock,
        limited_threshold=threshold,
        version=7,
        updated_at="2026-11-23T10:00:00.123Z",
    )
    assert pos == Position(
        sku="sku-1",
        location="loc-1",
        on_hand=on_hand,
        reserved=reserved,
        safety_stock=safety_stock,
        available=expected[0],
        status=expected[1],
        version=7,
        updated_at="2026-11-23T10:00:00.123Z",
    )


def test_position_on_the_wire_has_api_fields_in_order() -> None:
    pos = position(
        location="loc-1",
        sku="sku-1",
        on_hand=5,
        reserved=1,
        safety_stock=1,
        limited_threshold=2,
        version=0,
        updated_at=None,
    )
    assert msgspec.json.encode(pos) == (
        b'{"sku":"sku-1","location":"loc-1","on_hand":5,"reserved":1,"safety_stock":1,'
        b'"available":3,"status":"in_stock","version":0,"updated_at":null,'
        b'"unsellable":0,"incoming":0}'
    )


def test_unsellable_is_never_available() -> None:
    pos = position(
        location="l", sku="s", on_hand=10, reserved=2, safety_stock=1, limited_threshold=2,
        version=1, updated_at=None, unsellable=4, incoming=9,
    )  # fmt: skip
    assert (pos.available, pos.status, pos.unsellable, pos.incoming) == (3, "in_stock", 4, 9)
    assert available(3, 0, 0, 5) == 0  # never below zero
    assert for_channel(pos, 2, 2).available == 1


def test_max_quantity_is_ten_to_the_twelfth_and_exact_as_a_double() -> None:
    assert MAX_QUANTITY == 1_000_000_000_000
    # Lua numbers are doubles: the cap, and sums of a few capped fields, must stay exact.
    assert int(float(MAX_QUANTITY)) == MAX_QUANTITY
    assert int(float(MAX_QUANTITY) * 3 + 1) == 3 * MAX_QUANTITY + 1
    assert 3 * MAX_QUANTITY < 10**14  # cjson prints integers from 10^14 in exponent form
