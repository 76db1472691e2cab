"""The pure parts of sourcing holds: the record partition, parts from a plan's allocations, the
shortages a failed hold reports, allow_partial's cut order, and the record document's shape."""

from __future__ import annotations

import zlib

import pytest

from omnistock.domain.sourcing_holds import (
    FINISHED,
    HoldPart,
    HoldRequest,
    SourcingHold,
    clip_to,
    decode_hold,
    encode_hold,
    parts_of,
    record_partition,
    summed_shortages,
)


def test_record_partition_is_crc32_of_the_digest() -> None:
    digest = "0f" * 16
    assert record_partition(digest, 64) == zlib.crc32(digest.encode()) % 64
    assert all(0 <= record_partition(f"{n:032x}", 7) < 7 for n in range(200))


def test_parts_of_gives_each_allocation_a_fresh_id() -> None:
    made: list[str] = []

    def new_id(loc: str) -> str:
        made.append(loc)
        return f"r-{loc}-{len(made)}"

    parts = parts_of([("a", 1.5, [("x", 2)]), ("b", None, [("y", 1), ("z", 3)])], new_id)
    assert parts == [
        HoldPart(reservation="r-a-1", location="a", lines=[("x", 2)], distance_km=1.5),
        HoldPart(reservation="r-b-2", location="b", lines=[("y", 1), ("z", 3)]),
    ]


@pytest.mark.parametrize(
    ("order", "available", "want"),
    [
        # One sku short over all candidates: only it.
        ([("x", 5), ("y", 1)], [{"x": 2}, {"x": 1, "y": 1}], [("x", 5, 3)]),
        # Nothing anywhere, negative availability counts as none.
        ([("x", 2)], [{"x": -3}, {}], [("x", 2, 0)]),
        # Enough in sum (but no option within max_locations): every line with its sum.
        ([("x", 2), ("y", 1)], [{"x": 1}, {"x": 1}, {"y": 5}], [("x", 2, 2), ("y", 1, 5)]),
        # No candidates at all.
        ([("x", 1)], [], [("x", 1, 0)]),
    ],
)
def test_summed_shortages(
    order: list[tuple[str, int]],
    available: list[dict[str, int]],
    want: list[tuple[str, int, int]],
) -> None:
    assert summed_shortages(order, available) == want


def test_clip_to_cuts_each_line_to_the_sum_and_drops_empty_ones() -> None:
    available = [{"x": 2, "y": 0}, {"x": 1, "z": -1}]
    assert clip_to([("x", 5), ("y", 1), ("z", 1), ("w", 2)], available) == [("x", 3)]
    assert clip_to([("x", 2)], available) == [("x", 2)]
    assert clip_to([("y", 1)], available) == []


def test_the_record_document_round_trips_and_finished_states() -> None:
    record = SourcingHold(
        id="s3-abcdefghijklmnopqrst", status="failed", attempt=2,
        request=HoldRequest(lines=[("x", 1)], fulfillment="ship", ttl_ms=900_000, channel="web"),
        parts=[HoldPart(reservation="r3-abcdefghijklmnopqrst", location="a", lines=[("x", 1)])],
        why="a has every line", actor="shop", created_at=1, updated_at=2, lease_until=3,
        shortages=[("x", 1, 0)],
    )  # fmt: skip
    assert decode_hold(encode_hold(record)) == record
    assert {"held", "failed", "released"} == FINISHED
