"""Identifiers (API.md "Conventions"), partitions and reservation ids."""

from __future__ import annotations

import re
import string
from typing import Annotated

import msgspec
import pytest

from omnistock.domain.errors import NotFound, ValidationFailed
from omnistock.domain.ids import (
    IDENTIFIER_PATTERN,
    TEXT_PATTERN,
    check_identifier,
    is_identifier,
    new_reservation_id,
    partition_of,
    reservation_partition,
)

Text = Annotated[str, msgspec.Meta(pattern=TEXT_PATTERN)]


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        pytest.param("", False, id="empty"),
        pytest.param("a", True, id="1-char"),
        pytest.param("a" * 127, True, id="127-chars"),
        pytest.param("a" * 128, True, id="128-chars"),
        pytest.param("a" * 129, False, id="129-chars"),
        pytest.param(string.ascii_uppercase, True, id="A-Z"),
        pytest.param(string.ascii_lowercase, True, id="a-z"),
        pytest.param(string.digits, True, id="0-9"),
        pytest.param(".", True, id="dot"),
        pytest.param("_", True, id="underscore"),
        pytest.param(":", True, id="colon"),
        pytest.param("-", True, id="hyphen"),
        pytest.param("SKU-1.2_a:b", True, id="mixed"),
        pytest.param("a b", False, id="space"),
        pytest.param("a/b", False, id="slash"),
        pytest.param("a\\b", False, id="backslash"),
        pytest.param("a?b", False, id="question"),
        pytest.param("a#b", False, id="hash"),
        pytest.param("a%2F", False, id="percent"),
        pytest.param("a+b", False, id="plus"),
        pytest.param("a,b", False, id="comma"),
        pytest.param("a@b", False, id="at"),
        pytest.param("a*b", False, id="star"),
        pytest.param("a~b", False, id="tilde"),
        pytest.param("'a'", False, id="quote"),
        pytest.param("é", False, id="non-ascii-letter"),
        pytest.param("٣", False, id="non-ascii-digit"),
        pytest.param("\uff41", False, id="fullwidth"),
        pytest.param("a\tb", False, id="tab"),
        pytest.param("a\x00", False, id="nul"),
        pytest.param("a\nb", False, id="inner-newline"),
        pytest.param("\na", False, id="leading-newline"),
        pytest.param("a\n", False, id="trailing-newline"),
        pytest.param("a" * 128 + "\n", False, id="128+newline"),
    ],
)
def test_identifier_rule(value: str, valid: bool) -> None:
    assert is_identifier(value) is valid
    # The same pattern is what msgspec checks in bodies and Litestar in paths and queries.
    assert (re.search(IDENTIFIER_PATTERN, value) is not None) is valid
    if valid:
        assert check_identifier("sku", value) == value
    else:
        with pytest.raises(ValidationFailed) as err:
            check_identifier("sku", value)
        assert (err.value.status, err.value.field) == (422, "sku")
        assert err.value.detail == "sku: must be 1-128 characters of A-Z a-z 0-9 . _ : -"


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        pytest.param("", True, id="empty"),
        pytest.param("Order 42 / café", True, id="text"),
        pytest.param("a\x00b", False, id="nul"),
        pytest.param("a\tb", False, id="tab"),
        pytest.param("a\nb", False, id="inner-newline"),
        pytest.param("a\x1f", False, id="unit-separator"),
        pytest.param("a\x7f", False, id="del"),
        pytest.param("a\n", False, id="trailing-newline"),
    ],
)
def test_text_rule(value: str, valid: bool) -> None:
    # Free text (names, refs) is checked by msgspec with this pattern.
    assert (re.search(TEXT_PATTERN, value) is not None) is valid
    if valid:
        assert msgspec.convert(value, Text) == value
    else:
        with pytest.raises(msgspec.ValidationError):
            msgspec.convert(value, Text)


@pytest.mark.parametrize(
    ("location", "partitions", "partition"),
    [
        pytest.param("store-1", 1, 0, id="one-partition"),
        pytest.param("store-1", 16, 10, id="store-1/16"),
        pytest.param("store-1", 64, 10, id="store-1/64"),
        pytest.param("store-1", 1024, 394, id="store-1/1024"),
        pytest.param("paris-01", 64, 22, id="paris-01/64"),
        pytest.param("wh:east", 64, 61, id="wh:east/64"),
        pytest.param("A", 64, 11, id="A/64"),
        pytest.param("loc", 64, 28, id="loc/64"),
        pytest.param("loc", 16384, 11484, id="loc/16384"),
    ],
)
def test_partition_of_is_stable(location: str, partitions: int, partition: int) -> None:
    # crc32 % P: stored keys and streams depend on it, so these values may never change.
    assert partition_of(location, partitions) == partition


@pytest.mark.parametrize("partitions", [1, 2, 64, 16384])
def test_reservation_id_round_trip(partitions: int) -> None:
    seen = set()
    for partition in sorted({0, 1, partitions // 2, partitions - 1} & set(range(partitions))):
        for _ in range(50):
            rid = new_reservation_id(partition)
            assert re.fullmatch(rf"r{partition}-[a-z2-7]{{20}}", rid)
            assert reservation_partition(rid, partitions) == partition
            seen.add(rid)
    assert len(seen) == 50 * len({0, 1, partitions // 2, partitions - 1} & set(range(partitions)))


TOKEN = "abcdefghijklmnopqrst"


@pytest.mark.parametrize(
    "rid",
    [
        pytest.param("", id="empty"),
        pytest.param(f"r64-{TOKEN}", id="partition-too-big"),
        pytest.param(f"r-{TOKEN}", id="no-partition"),
        pytest.param(f"r123456-{TOKEN}", id="six-digits"),
        pytest.param(f"R1-{TOKEN}", id="capital-r"),
        pytest.param(f"x1-{TOKEN}", id="other-prefix"),
        pytest.param(f"r1_{TOKEN}", id="underscore"),
        pytest.param(f"r1-{TOKEN[:-1]}", id="19-char-token"),
        pytest.param(f"r1-{TOKEN}u", id="21-char-token"),
        pytest.param(f"r1-{TOKEN.upper()}", id="upper-token"),
        pytest.param(f"r1-{TOKEN[:-1]}1", id="base32-has-no-1"),
        pytest.param(f"r1-{TOKEN[:-1]}8", id="base32-has-no-8"),
        pytest.param(f" r1-{TOKEN}", id="leading-space"),
        pytest.param(f"r1-{TOKEN}\n", id="trailing-newline"),
    ],
)
def test_reservation_ids_not_ours_are_not_found(rid: str) -> None:
    with pytest.raises(NotFound) as err:
        reservation_partition(rid, 64)
    assert err.value.status == 404
    assert err.value.detail == f"reservation {rid!r} not found"


def test_reservation_id_edges_that_are_ours() -> None:
    assert reservation_partition(f"r63-{TOKEN}", 64) == 63
    assert reservation_partition(f"r0-{TOKEN}", 1) == 0
    assert reservation_partition(f"r2-{'234567' * 3}ab", 64) == 2
    assert reservation_partition(f"r99999-{TOKEN}", 100_000) == 99_999
