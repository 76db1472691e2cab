"""domain/supply.py: the ETA rules (the pattern states every one), lines, schedules."""

from __future__ import annotations

import re

import pytest

from omnistock.domain.errors import ValidationFailed
from omnistock.domain.supply import (
    DATE_TIME_PATTERN,
    MAX_LINE_QTY,
    Due,
    StoredSupply,
    SupplyLine,
    due_units,
    due_with_scores,
    parse_eta,
    schedule_member,
    sum_supply_lines,
)
from omnistock.sync.supply_state import expected_schedules

PATTERN = re.compile(DATE_TIME_PATTERN)


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("2026-12-01T09:00:00Z", 1_796_115_600_000),
        ("2026-12-01T09:00:00.5z", 1_796_115_600_500),
        ("2026-12-01T10:00:00.123456789+01:00", 1_796_115_600_123),
        ("2024-02-29T00:00:00Z", 1_709_164_800_000),
        ("2000-01-01T00:00:00+23:59", 946_598_460_000),
        ("2099-12-31T23:59:59-23:59", 4_102_531_139_000),
    ],
)
def test_every_date_time_the_pattern_admits_parses(text: str, ms: int) -> None:
    assert PATTERN.search(text)
    assert parse_eta("eta", text) == ms


@pytest.mark.parametrize(
    "text",
    [
        "2026-02-29T00:00:00Z", "2100-02-29T00:00:00Z", "2026-04-31T00:00:00Z",
        "2026-12-01T24:00:00Z", "2026-12-01T09:00:00", "2026-12-01", "1999-12-31T23:59:59Z",
        "2100-01-01T00:00:00Z", "2026-12-01T09:00:00Z\n", "2026-12-01T09:00:00+24:00",
        "2026-12-01 09:00:00Z",
    ],
)  # fmt: skip
def test_what_the_pattern_refuses_parse_eta_refuses(text: str) -> None:
    assert not PATTERN.search(text)
    with pytest.raises(ValidationFailed) as caught:
        parse_eta("by", text)
    assert caught.value.field == "by"


def test_leap_days_of_the_century() -> None:
    leap = [y for y in range(2000, 2100) if PATTERN.search(f"{y}-02-29T00:00:00Z")]
    assert leap == [y for y in range(2000, 2100) if y % 4 == 0]


def test_sum_lines_merges_and_caps() -> None:
    assert sum_supply_lines([("a", 1), ("b", 2), ("a", 3)]) == [("a", 4), ("b", 2)]
    with pytest.raises(ValidationFailed) as caught:
        sum_supply_lines([("a", MAX_LINE_QTY), ("b", 1), ("a", 1)])
    assert caught.value.field == "lines[2].qty"


def test_schedule_members_and_units() -> None:
    assert schedule_member("y1-abc", 7) == "y:y1-abc:7"
    assert due_units([b"y:y1-abc:7", "t:t2-x:3"]) == 10
    assert due_units([]) == 0


def test_due_with_scores_finds_the_earliest_eta_and_sums_its_ties() -> None:
    flat = [b"y:y1-a:3", b"100", b"t:t1-b:2", b"100", b"y:y2-c:5", b"250"]
    assert due_with_scores(flat) == Due(units=10, next_eta=100, next_units=5)
    pairs = [("y:y2-c:5", 250.0), ("y:y1-a:3", 100.0)]  # RESP3 pairs; any order
    assert due_with_scores(pairs) == Due(units=8, next_eta=100, next_units=3)
    assert due_with_scores([b"y:y1-a:4", b"1764579600000"]).next_eta == 1_764_579_600_000
    assert due_with_scores([]) == Due(units=0, next_eta=None, next_units=0)
    assert due_with_scores([b"t:t1-a:2", b"-inf", b"y:y1-b:1", b"7"]) == Due(
        units=3, next_eta=7, next_units=1
    )


def test_expected_schedules_hold_only_what_is_outstanding() -> None:
    doc = StoredSupply(
        id="y1-a", location="L", eta=5, status="partially_received", kind="other",
        created_at=1, updated_at=2, actor="x",
        lines=[SupplyLine(sku="a", qty=4, received=1), SupplyLine(sku="b", qty=2, received=3)],
    )  # fmt: skip
    assert doc.lines[1].outstanding == 0
    assert dict(expected_schedules([doc])) == {("L", "a"): {"y:y1-a:3": 5}}
