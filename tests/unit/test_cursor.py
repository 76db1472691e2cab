"""Cursors: compact, URL-safe, exact round trips; anything else is a clear CursorError."""

from __future__ import annotations

import contextlib
import random
import re

import pytest

from omnistock.stream.cursor import CursorError, decode, encode, format_id, pack, parse_id

NOW_MS = 1_795_000_000_000


def test_round_trip_exact() -> None:
    rng = random.Random(7)
    for _ in range(200):
        positions = [
            0 if rng.random() < 0.1 else pack(NOW_MS - rng.randrange(10**9), rng.randrange(50))
            for _ in range(64)
        ]
        assert decode(encode(positions), 64) == positions


def test_busy_partitions_make_a_short_url_safe_cursor() -> None:
    # 64 partitions written within the last 50 ms, most at sequence 0.
    positions = [pack(NOW_MS - (p * 7) % 50, p % 3 == 0) for p in range(64)]
    token = encode(positions)
    assert re.fullmatch(r"[A-Za-z0-9_-]+", token)
    assert len(token) <= 140
    # Idle partitions (hours old) and never-written ones still fit in a few hundred characters.
    positions = [pack(NOW_MS - p * 3_600_000, 0) if p % 2 else 0 for p in range(64)]
    assert len(encode(positions)) <= 250


def test_ids() -> None:
    assert format_id(parse_id(b"1795000000000-42")) == "1795000000000-42"
    assert parse_id("5-0") < parse_id("5-1") < parse_id("6-0")
    assert parse_id("5-18446744073709551615") + 1 == parse_id("6-0")


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("", "empty"),
        ("x" * 5000, "too long"),
        ("AQ==", "bad characters"),
        ("a b", "bad characters"),
        ("Ag", "server version"),
        ("AQ", "truncated"),
        ("AQI", "partitions"),
        (encode([pack(NOW_MS, 0)] * 64) + "AA", "trailing"),
        (encode([pack(NOW_MS, 0)] * 64)[:-4], "truncated"),
        ("Af____________8", "corrupt"),
    ],
)
def test_garbage_is_a_clear_error(token: str, message: str) -> None:
    with pytest.raises(CursorError, match=message):
        decode(token, 64)


def test_random_garbage_never_raises_anything_else() -> None:
    rng = random.Random(11)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    valid = encode([pack(NOW_MS - n, n) for n in range(64)])
    for n in range(2000):
        if n % 2:
            token = "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 300)))
        else:  # a valid cursor with one character changed
            at = rng.randrange(len(valid))
            token = valid[:at] + rng.choice(alphabet) + valid[at + 1 :]
        with contextlib.suppress(CursorError):  # anything else fails the test
            assert len(decode(token, 64)) == 64
