"""Timestamps: ms inside, RFC 3339 UTC with milliseconds outside (API.md "Conventions")."""

from __future__ import annotations

import re
import time

import pytest

from omnistock.domain.clock import now_ms, parse_rfc3339, rfc3339

FORMATS = [
    pytest.param(0, "1970-01-01T00:00:00.000Z", id="epoch"),
    pytest.param(1, "1970-01-01T00:00:00.001Z", id="one-ms"),
    pytest.param(999, "1970-01-01T00:00:00.999Z", id="999-ms"),
    pytest.param(1000, "1970-01-01T00:00:01.000Z", id="one-second"),
    pytest.param(-1, "1969-12-31T23:59:59.999Z", id="before-epoch"),
    pytest.param(1_763_892_000_123, "2025-11-23T10:00:00.123Z", id="docstring-example"),
    pytest.param(951_782_400_000, "2000-02-29T00:00:00.000Z", id="leap-day"),
    pytest.param(1_767_225_599_999, "2025-12-31T23:59:59.999Z", id="last-ms-of-year"),
    pytest.param(1_767_225_600_000, "2026-01-01T00:00:00.000Z", id="first-ms-of-year"),
    pytest.param(253_402_300_799_999, "9999-12-31T23:59:59.999Z", id="last-4-digit-year"),
]


@pytest.mark.parametrize(("ms", "text"), FORMATS)
def test_rfc3339_formats(ms: int, text: str) -> None:
    assert rfc3339(ms) == text
    assert rfc3339(ms) == text  # again: the per-second cache gives the same answer


@pytest.mark.parametrize(("ms", "text"), FORMATS)
def test_parse_rfc3339_is_the_inverse(ms: int, text: str) -> None:
    assert parse_rfc3339(text) == ms


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        pytest.param("2025-11-23T10:00:00Z", 1_763_892_000_000, id="no-fraction"),
        pytest.param("2025-11-23T10:00:00.123+00:00", 1_763_892_000_123, id="plus-zero-offset"),
        pytest.param("2025-11-23T11:00:00.123+01:00", 1_763_892_000_123, id="east-offset"),
        pytest.param("2025-11-23T04:30:00.123-05:30", 1_763_892_000_123, id="west-offset"),
        pytest.param("2025-11-23T10:00:00.123", 1_763_892_000_123, id="no-offset-is-utc"),
    ],
)
def test_parse_rfc3339_offsets(text: str, ms: int) -> None:
    assert parse_rfc3339(text) == ms


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("yesterday", id="words"),
        pytest.param("1763892000123", id="epoch-number"),
        pytest.param("2025-13-01T00:00:00Z", id="month-13"),
        pytest.param("2025-02-29T00:00:00Z", id="no-leap-day"),
        pytest.param("2025-11-31T00:00:00Z", id="november-31"),
        pytest.param("2025-11-23T24:00:01Z", id="hour-24"),
        pytest.param("2025-11-23T10:60:00Z", id="minute-60"),
        pytest.param("2025-11-23T10:00:00+25:00", id="offset-25h"),
        pytest.param("2025-11-23T10:00:00ZZ", id="double-z"),
    ],
)
def test_parse_rfc3339_rejects(text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the documented error; messages are Python's
        parse_rfc3339(text)


def test_round_trip_every_ms_of_a_busy_stretch() -> None:
    start = 1_795_000_000_000
    for ms in range(start, start + 3_000):
        text = rfc3339(ms)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", text)
        assert parse_rfc3339(text) == ms


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        pytest.param(547_641_621_915, "1987-05-10T10:40:21.915Z", id="1987"),
        pytest.param(2_178_489_544_595, "2039-01-12T23:59:04.595Z", id="2039"),
        pytest.param(-544_483_292_614, "1952-09-30T02:38:27.386Z", id="1952"),
    ],
)
def test_round_trip_is_exact_for_every_ms(ms: int, text: str) -> None:
    assert rfc3339(ms) == text
    assert parse_rfc3339(text) == ms


def test_now_ms_is_wall_clock_milliseconds() -> None:
    before = time.time_ns() // 1_000_000
    now = now_ms()
    after = time.time_ns() // 1_000_000
    assert before <= now <= after
