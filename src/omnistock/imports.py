"""Bulk import of absolute on_hand per position (CSV or NDJSON), streamed: the input is read in
chunks, applied in batches through set.lua (``kind=import``), and never held whole in memory.
Bad lines are rejected with their line number and the good ones applied; a position whose values
do not change gets no new version and no event, so re-importing a file changes nothing."""

from __future__ import annotations

import asyncio
import csv
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Literal

import msgspec

from omnistock.domain.errors import ValidationFailed
from omnistock.domain.ids import is_identifier
from omnistock.redis.store import Count, StockStore

Format = Literal["csv", "ndjson"]
MAX_ON_HAND = 10**12
MAX_REJECTED = 1000  # listed; beyond that only counted
BATCH = 500  # rows per batch (one script call per partition in it)
LANES = 16  # batches in flight at most
PACE_EVERY = 20_000  # rows between back-pressure checks


class Rejected(msgspec.Struct):
    line: int
    error: str


class ImportResult(msgspec.Struct, kw_only=True):
    rows: int = 0
    rejected: list[Rejected] = msgspec.field(default_factory=list)
    rejected_total: int = 0


class _NdjsonRow(msgspec.Struct, kw_only=True):
    location: str
    sku: str
    on_hand: Annotated[int, msgspec.Meta(ge=0, le=MAX_ON_HAND)]
    safety_stock: Annotated[int, msgspec.Meta(ge=0, le=MAX_ON_HAND)] | None = None


_decode_ndjson = msgspec.json.Decoder(_NdjsonRow).decode


def format_for(content_type: str | None, filename: str | None = None) -> Format:
    """The format named by a Content-Type (or a file extension)."""
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind in ("text/csv", "application/csv"):
        return "csv"
    if kind in (
        "application/x-ndjson",
        "application/ndjson",
        "application/jsonl",
        "application/x-jsonlines",
    ):
        return "ndjson"
    if filename is not None:
        if filename.endswith((".ndjson", ".jsonl")):
            return "ndjson"
        if filename.endswith(".csv"):
            return "csv"
    raise ValidationFailed("Content-Type", "send text/csv or application/x-ndjson")


async def _lines(chunks: AsyncIterator[bytes]) -> AsyncIterator[tuple[int, bytes]]:
    """Numbered lines (1-based) of a byte stream, chunk by chunk."""
    number, tail = 0, b""
    async for chunk in chunks:
        parts = (tail + chunk).split(b"\n")
        tail = parts.pop()
        for part in parts:
            number += 1
            yield number, part.rstrip(b"\r")
    if tail:
        yield number + 1, tail.rstrip(b"\r")


class _CsvColumns:
    def __init__(self, header: list[str]) -> None:
        names = [h.strip().lower() for h in header]
        missing = [n for n in ("location", "sku", "on_hand") if n not in names]
        if missing:
            raise ValidationFailed(
                "body",
                f"CSV header must name location,sku,on_hand[,safety_stock]; missing {', '.join(missing)}",
            )
        self.location, self.sku, self.on_hand = (
            names.index(n) for n in ("location", "sku", "on_hand")
        )
        self.safety = names.index("safety_stock") if "safety_stock" in names else None
        self.width = len(names)


def _csv_fields(raw: bytes) -> list[str]:
    text = raw.decode()
    if '"' not in text:
        return text.split(",")
    return next(csv.reader([text]))


def _int(value: str, name: str) -> int:
    value = value.strip()
    if not value.isdigit():
        raise ValueError(f"{name} must be a whole number >= 0, got {value!r}")
    number = int(value)
    if number > MAX_ON_HAND:
        raise ValueError(f"{name} must be at most {MAX_ON_HAND}")
    return number


def _parse_csv(raw: bytes, cols: _CsvColumns) -> Count:
    fields = _csv_fields(raw)
    if len(fields) != cols.width:
        raise ValueError(f"expected {cols.width} columns, got {len(fields)}")
    safety = fields[cols.safety].strip() if cols.safety is not None else ""
    return Count(
        location=fields[cols.location].strip(),
        sku=fields[cols.sku].strip(),
        on_hand=_int(fields[cols.on_hand], "on_hand"),
        safety_stock=_int(safety, "safety_stock") if safety else None,
        reason="import",
    )


def _parse_ndjson(raw: bytes) -> Count:
    try:
        row = _decode_ndjson(raw)
    except msgspec.MsgspecError as exc:
        raise ValueError(str(exc)) from None
    return Count(
        location=row.location,
        sku=row.sku,
        on_hand=row.on_hand,
        safety_stock=row.safety_stock,
        reason="import",
    )


async def import_stream(
    chunks: AsyncIterator[bytes],
    fmt: Format,
    store: StockStore,
    actor: str,
    *,
    allowed: Callable[[str], str | None],
    pace: Callable[[], Awaitable[None]] | None = None,
    progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Apply every good line; ``allowed(location)`` returns why a location cannot be written
    (unknown, or not this key's), or None. ``pace`` is awaited between batches (back-pressure)."""
    result = ImportResult()
    # Rows go to one of LANES batches by position; each lane has at most one batch in flight, so
    # the rows of a position are applied in file order while many batches load Redis at once.
    pending: dict[int, list[Count]] = defaultdict(list)
    in_flight: dict[int, asyncio.Task[None]] = {}
    queued = 0
    cols: _CsvColumns | None = None

    def reject(line: int, error: str) -> None:
        result.rejected_total += 1
        if len(result.rejected) < MAX_REJECTED:
            result.rejected.append(Rejected(line=line, error=error))

    async def apply(counts: list[Count]) -> None:
        await store.set_counts(counts, actor, None, kind="import", positions=False)
        result.rows += len(counts)
        if progress is not None:
            progress(result.rows)

    async def dispatch(lane: int) -> None:
        previous = in_flight.get(lane)
        if previous is not None:
            await previous
        in_flight[lane] = asyncio.create_task(apply(pending.pop(lane)))

    try:
        async for number, raw in _lines(chunks):
            if not raw.strip():
                continue
            if fmt == "csv" and cols is None:
                cols = _CsvColumns(_csv_fields(raw))
                continue
            try:
                count = _parse_csv(raw, cols) if cols is not None else _parse_ndjson(raw)
            except (ValueError, UnicodeDecodeError, csv.Error) as exc:
                reject(number, str(exc))
                continue
            if not is_identifier(count.location) or not is_identifier(count.sku):
                bad = "location" if not is_identifier(count.location) else "sku"
                reject(number, f"{bad} must be 1-128 characters of A-Z a-z 0-9 . _ : -")
                continue
            refused = allowed(count.location)
            if refused is not None:
                reject(number, refused)
                continue
            lane = hash((count.location, count.sku)) % LANES
            batch = pending[lane]
            batch.append(count)
            if len(batch) >= BATCH:
                await dispatch(lane)
            queued += 1
            if queued >= PACE_EVERY:
                queued = 0
                if pace is not None:
                    await pace()
        for lane in list(pending):
            await dispatch(lane)
        await asyncio.gather(*in_flight.values())
    except BaseException:
        for task in in_flight.values():
            task.cancel()
        raise
    return result
