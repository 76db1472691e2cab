"""CSV import lines: the one-regex fast path reads exactly what the careful parser reads, and
leaves everything else (quotes, spaces, big numbers, errors) to it."""

from __future__ import annotations

import random

import pytest

from omnistock.domain.commands import Count
from omnistock.usecases.imports import MAX_ON_HAND, _csv_fields, _CsvColumns, _parse_csv

HEADERS = [
    "location,sku,on_hand",
    "location,sku,on_hand,safety_stock",
    "sku,on_hand,location",
    "name,safety_stock,sku,note,on_hand,location",
    "Location , SKU,On_Hand,sku",  # names are trimmed and lower-cased; the first sku counts
]
VALUES = [
    "L1", "store-9", "a.b:c_d", "x" * 128, "x" * 129, "", " L1", "L1 ", "bad sku", "é",
    "0", "7", "007", "999999999999", str(MAX_ON_HAND), str(MAX_ON_HAND + 1), "-1", "1.5", "+3",
    "1e3", '"7"', '"L,1"', "\t5", "\uff15", "note with spaces", "a'b", "~!#$%&()*+-./;<=>?@[]^`{|}",
]  # fmt: skip


def careful(raw: bytes, cols: _CsvColumns) -> Count | str:
    try:
        return _parse_csv(raw, cols)
    except (ValueError, UnicodeDecodeError) as exc:
        return f"rejected: {exc}"


@pytest.mark.parametrize("header", HEADERS)
def test_fast_path_agrees_with_the_careful_parser(header: str) -> None:
    cols = _CsvColumns(_csv_fields(header.encode()))
    rng = random.Random(header)
    fast_hits = 0
    for _ in range(4000):
        width = cols.width + rng.choice([0, 0, 0, 0, -1, 1])
        good = {cols.location: "L1", cols.sku: "SKU-1", cols.on_hand: "5", cols.safety: "2"}
        raw = ",".join(
            good.get(i, "x") if rng.random() < 0.7 else rng.choice(VALUES) for i in range(width)
        ).encode()
        if rng.random() < 0.05:
            raw += b"\xff"
        fast = cols.fast(raw)
        if fast is not None:
            fast_hits += 1
            assert fast == careful(raw, cols), raw
    assert fast_hits > 50  # the common lines do take the fast path


def test_fast_path_reads_the_common_lines() -> None:
    cols = _CsvColumns(_csv_fields(b"sku,safety_stock,on_hand,location,extra"))
    assert cols.fast(b"SKU-1,,12,L1,whatever it says") == Count(
        "L1", "SKU-1", 12, None, None, "import"
    )
    assert cols.fast(b"SKU-1,3,0,L1,") == Count("L1", "SKU-1", 0, 3, None, "import")
    for odd in (
        b"SKU-1,,12,L1",
        b"SKU-1,,12 ,L1,",
        b'SKU-1,,12,"L1",',
        b"SKU-1,,1000000000000,L1,",
    ):
        assert cols.fast(odd) is None
