"""Reservations (pure): summing lines and the 1,000,000 cap, presenting, and the shortage 409."""

from __future__ import annotations

import msgspec
import pytest

from omnistock.domain.errors import Conflict, Shortage, ValidationFailed
from omnistock.domain.reservations import (
    MAX_LIFETIME_SECONDS,
    MAX_LINE_QTY,
    Reservation,
    ReservationLine,
    ShortageLine,
    StoredReservation,
    decode_reservation,
    present,
    shortage,
    sum_lines,
)

CREATED = 1_795_000_000_000
CREATED_AT = "2026-11-18T11:06:40.000Z"


def test_limits_are_the_documented_ones() -> None:
    assert MAX_LINE_QTY == 1_000_000
    assert MAX_LIFETIME_SECONDS == 604_800  # 7 days, also the largest ttl_seconds


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        pytest.param([], [], id="none"),
        pytest.param([("a", 1)], [("a", 1)], id="one"),
        pytest.param([("a", 1), ("b", 2)], [("a", 1), ("b", 2)], id="distinct-keep-order"),
        pytest.param([("b", 2), ("a", 1)], [("b", 2), ("a", 1)], id="not-sorted"),
        pytest.param([("a", 1), ("b", 2), ("a", 3)], [("a", 4), ("b", 2)], id="first-place-kept"),
        pytest.param([("a", 1), ("A", 2)], [("a", 1), ("A", 2)], id="case-sensitive"),
        pytest.param([("a", MAX_LINE_QTY)], [("a", MAX_LINE_QTY)], id="one-at-cap"),
        pytest.param(
            [("a", MAX_LINE_QTY - 1), ("a", 1)], [("a", MAX_LINE_QTY)], id="sum-exactly-cap"
        ),
        pytest.param(
            [("a", MAX_LINE_QTY), ("b", MAX_LINE_QTY)],
            [("a", MAX_LINE_QTY), ("b", MAX_LINE_QTY)],
            id="cap-is-per-sku",
        ),
        pytest.param([("a", 250_000)] * 4, [("a", MAX_LINE_QTY)], id="four-quarters"),
    ],
)
def test_sum_lines_merges(lines: list[tuple[str, int]], expected: list[tuple[str, int]]) -> None:
    assert sum_lines(lines) == expected


@pytest.mark.parametrize(
    ("lines", "field", "sku", "total"),
    [
        pytest.param([("a", MAX_LINE_QTY + 1)], "lines[0].qty", "a", 1_000_001, id="one-line"),
        pytest.param([("a", MAX_LINE_QTY), ("a", 1)], "lines[1].qty", "a", 1_000_001, id="cap+1"),
        pytest.param(
            [("a", 500_000), ("b", 1), ("a", 500_000), ("b", 2), ("a", 1)],
            "lines[4].qty",
            "a",
            1_000_001,
            id="fifth-line-passes",
        ),
        pytest.param(
            [("b", 1)] + [("a", 250_000)] * 5, "lines[5].qty", "a", 1_250_000, id="sixth-line"
        ),
        pytest.param(
            [("a", 999_999), ("b", 999_999), ("b", 2)], "lines[2].qty", "b", 1_000_001, id="sku-b"
        ),
    ],
)
def test_sum_lines_past_the_cap_names_the_line_that_passes_it(
    lines: list[tuple[str, int]], field: str, sku: str, total: int
) -> None:
    with pytest.raises(ValidationFailed) as err:
        sum_lines(lines)
    message = f"the lines naming sku {sku!r} sum to {total}, over 1000000"
    assert err.value.status == 422
    assert err.value.field == field
    assert err.value.detail == f"{field}: {message}"
    assert err.value.extra == {"errors": [{"field": field, "message": message}], "field": field}


def test_sum_lines_names_the_field_it_is_given() -> None:
    with pytest.raises(ValidationFailed) as err:
        sum_lines([("a", 1), ("a", MAX_LINE_QTY)], field="commit.lines")
    assert err.value.field == "commit.lines[1].qty"


def stored(status: str, finished_at: int | None, **extra: object) -> StoredReservation:
    doc = {
        "id": "r3-abcdefghijklmnopqrst",
        "location": "loc-1",
        "status": status,
        "actor": "pos-1",
        "created_at": CREATED,
        "expires_at": CREATED + 900_000,
        "lines": [["sku-a", 3, 3, 2], ["sku-b", 5, 4, 0]],
        "channel": "web",
        "ref": "order-9",
        "finished_at": finished_at,
        **extra,
    }
    return decode_reservation(msgspec.json.encode(doc))


@pytest.mark.parametrize(
    ("status", "finished_at", "committed", "finished"),
    [
        pytest.param("active", None, (None, None), None, id="active"),
        pytest.param(
            "committed", CREATED + 1, (2, 0), "2026-11-18T11:06:40.001Z", id="committed-shows-taken"
        ),
        pytest.param(
            "released", CREATED + 2, (None, None), "2026-11-18T11:06:40.002Z", id="released"
        ),
        pytest.param(
            "expired", CREATED + 900_000, (None, None), "2026-11-18T11:21:40.000Z", id="expired"
        ),
    ],
)
def test_present(
    status: str,
    finished_at: int | None,
    committed: tuple[int | None, int | None],
    finished: str | None,
) -> None:
    assert present(stored(status, finished_at)) == Reservation(
        id="r3-abcdefghijklmnopqrst",
        location="loc-1",
        lines=[
            ReservationLine(sku="sku-a", qty=3, reserved=3, committed=committed[0]),
            ReservationLine(sku="sku-b", qty=5, reserved=4, committed=committed[1]),
        ],
        status=status,  # type: ignore[arg-type]
        channel="web",
        ref="order-9",
        created_at=CREATED_AT,
        expires_at="2026-11-18T11:21:40.000Z",
        finished_at=finished,
    )


def test_stored_document_keeps_owner_and_defaults_when_absent() -> None:
    doc = stored("active", None, owner="k-1", owner_role="storefront")
    assert (doc.owner, doc.owner_role) == ("k-1", "storefront")
    assert (stored("active", None).owner, stored("active", None).owner_role) == (None, None)
    assert stored("active", None).lines == [("sku-a", 3, 3, 2), ("sku-b", 5, 4, 0)]


def test_presented_line_omits_committed_until_commit() -> None:
    active, committed = present(stored("active", None)), present(stored("committed", CREATED))
    assert msgspec.json.encode(active.lines[0]) == b'{"sku":"sku-a","qty":3,"reserved":3}'
    assert msgspec.json.encode(committed.lines[1]) == (
        b'{"sku":"sku-b","qty":5,"reserved":4,"committed":0}'
    )


@pytest.mark.parametrize(
    ("lines", "detail"),
    [
        pytest.param(
            [("sku-a", 3, 1)],
            "not enough stock to hold: sku-a (requested 3, available 1)",
            id="one",
        ),
        pytest.param(
            [("sku-a", 3, 0), ("sku-b", 1_000_000, 999_999)],
            "not enough stock to hold: sku-a (requested 3, available 0), "
            "sku-b (requested 1000000, available 999999)",
            id="two-in-order",
        ),
    ],
)
def test_shortage(lines: list[tuple[str, int, int]], detail: str) -> None:
    err = shortage(lines)
    assert isinstance(err, Shortage)
    assert isinstance(err, Conflict)
    assert (err.status, err.slug, err.title) == (409, "insufficient-stock", "Insufficient stock")
    assert err.detail == detail
    assert err.extra == {
        "shortages": [ShortageLine(sku=s, requested=r, available=a) for s, r, a in lines]
    }
    assert msgspec.json.encode(err.extra["shortages"][0]) == msgspec.json.encode(
        {"sku": lines[0][0], "requested": lines[0][1], "available": lines[0][2]}
    )
