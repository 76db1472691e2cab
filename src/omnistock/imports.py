"""Bulk import of absolute on_hand per position (CSV or NDJSON), streamed: the input is read in
chunks, applied in batches through set.lua (``kind=import``), and never held whole in memory.
Bad lines are rejected with their line number and the good ones applied; a position whose values
do not change gets no new version and no event, so re-importing a file changes nothing."""

from __future__ import annotations

import asyncio
import csv
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Literal

import msgspec

from omnistock.domain.errors import ValidationFailed
from omnistock.domain.ids import is_identifier
from omnistock.redis.store import Count, StockStore

Format = Literal["csv", "ndjson"]
MAX_ON_HAND = 10**12
MAX_REJECTED = 1000  # listed; beyond that only counted
# Redis is the limit of an import, and a deeper queue of bigger scripts costs it more per row
# (measured): 4 batches of 250 rows keep it busy while queueing at most ~10 ms of its time.
BATCH = 250  # rows per batch: one script call, all of one partition
LANES = 4  # batches in flight at most
WAITING = 16_000  # rows waiting for their batch to fill, at most (then the fullest one goes)
YIELD_EVERY = 32  # rows read between turns of the event loop (a batch waiting its turn goes)
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


async def _lines(chunks: AsyncIterator[bytes]) -> AsyncIterator[tuple[int, list[bytes]]]:
    """The lines of a byte stream, a chunk's worth at a time, with the number (1-based) of the
    first of them (a line keeps its trailing CR, if any)."""
    number, tail = 1, b""
    async for chunk in chunks:
        lines = (tail + chunk).split(b"\n")
        tail = lines.pop()
        if lines:
            yield number, lines
            number += len(lines)
    if tail:
        yield number, [tail]


# The common CSV line, matched in one go: identifiers, counts of at most 12 digits (below
# MAX_ON_HAND), other columns of printable ASCII but quotes and commas. Whatever else a line holds
# (quotes, spaces, bigger numbers, errors) goes through _parse_csv, which reads it or says why not.
_ID_RE = r"([A-Za-z0-9._:-]{1,128})"
_COUNT_RE = r"([0-9]{1,12})"
_COUNT_OR_EMPTY_RE = r"([0-9]{0,12})"
_OTHER_RE = r"[\x20\x21\x23-\x2b\x2d-\x7e]*"


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
        columns = [_OTHER_RE] * self.width
        columns[self.location] = columns[self.sku] = _ID_RE
        columns[self.on_hand] = _COUNT_RE
        if self.safety is not None:
            columns[self.safety] = _COUNT_OR_EMPTY_RE
        # Regex groups come in column order: where each of ours is.
        ours = [self.location, self.sku, self.on_hand]
        if self.safety is not None:
            ours.append(self.safety)
        self.groups = [sorted(ours).index(column) + 1 for column in ours]
        self.simple = re.compile(",".join(columns).encode()).fullmatch

    def fast(self, raw: bytes) -> Count | None:
        """The count of a common line (see _ID_RE), or None to parse it with _parse_csv."""
        match = self.simple(raw)
        if match is None:
            return None
        found = match.group(*self.groups)
        safety = found[3] if self.safety is not None else b""
        return Count(
            found[0].decode(),
            found[1].decode(),
            int(found[2]),
            int(safety) if safety else None,
            None,
            "import",
        )


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
    # Rows wait in one batch per partition. A full batch goes at once (the fullest when WAITING
    # rows wait), after the batch before it of its partition: a position's rows are applied in
    # file order, while up to LANES batches load Redis at once and we read on.
    pending: dict[int, list[Count]] = {}
    waiting = 0
    latest: dict[int, asyncio.Task[None]] = {}  # the last batch sent of each partition
    running: set[asyncio.Task[None]] = set()
    partitions: dict[str, int] = {}
    queued = 0
    cols: _CsvColumns | None = None

    def reject(line: int, error: str) -> None:
        result.rejected_total += 1
        if len(result.rejected) < MAX_REJECTED:
            result.rejected.append(Rejected(line=line, error=error))

    async def apply(previous: asyncio.Task[None] | None, counts: list[Count]) -> None:
        if previous is not None:
            await previous
        await store.set_counts(counts, actor, None, kind="import", positions=False)
        result.rows += len(counts)
        if progress is not None:
            progress(result.rows)

    async def dispatch(p: int) -> None:
        nonlocal waiting
        batch = pending.pop(p)
        waiting -= len(batch)
        while len(running) >= LANES:
            done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # a failed batch stops the import
        task = asyncio.create_task(apply(latest.get(p), batch))
        latest[p] = task
        running.add(task)
        task.add_done_callback(running.discard)
        await asyncio.sleep(0)  # let it go to Redis now

    def parse(number: int, raw: bytes) -> Count | None:
        """The count of a line, or None when it is rejected."""
        try:
            count = _parse_csv(raw, cols) if cols is not None else _parse_ndjson(raw)
        except (ValueError, UnicodeDecodeError, csv.Error) as exc:
            reject(number, str(exc))
            return None
        if not is_identifier(count.location) or not is_identifier(count.sku):
            bad = "location" if not is_identifier(count.location) else "sku"
            reject(number, f"{bad} must be 1-128 characters of A-Z a-z 0-9 . _ : -")
            return None
        return count

    try:
        async for first, lines in _lines(chunks):
            for number, raw in enumerate(lines, first):
                raw = raw.rstrip(b"\r")
                count = cols.fast(raw) if cols is not None else None
                if count is None:
                    if not raw.strip():
                        continue
                    if fmt == "csv" and cols is None:
                        cols = _CsvColumns(_csv_fields(raw))
                        continue
                    count = parse(number, raw)
                    if count is None:
                        continue
                refused = allowed(count.location)
                if refused is not None:
                    reject(number, refused)
                    continue
                p = partitions.get(count.location)
                if p is None:
                    p = partitions[count.location] = store.partition(count.location)
                batch = pending.get(p)
                if batch is None:
                    batch = pending[p] = []
                batch.append(count)
                waiting += 1
                if len(batch) >= BATCH:
                    await dispatch(p)
                elif waiting >= WAITING:
                    await dispatch(max(pending, key=lambda q: len(pending[q])))
                queued += 1
                if queued % YIELD_EVERY == 0:
                    await asyncio.sleep(0)  # batches waiting for their turn go now
                if queued >= PACE_EVERY:
                    queued = 0
                    if pace is not None:
                        await pace()
        for p in list(pending):
            await dispatch(p)
        await asyncio.gather(*latest.values())
    except BaseException:
        for task in running:
            task.cancel()
        raise
    return result
