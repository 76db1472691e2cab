"""Bulk import of absolute on_hand per position (CSV or NDJSON), streamed: the input is read in
chunks, applied in batches through set.lua (``kind=import``), and never held whole in memory.
Bad lines are rejected with their line number and the good ones applied; a position whose values
do not change gets no new version and no event, so re-importing a file changes nothing."""

from __future__ import annotations

import asyncio
import csv
import functools
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any, Literal

import msgspec

from omnistock.domain.commands import Count
from omnistock.domain.errors import PayloadTooLarge, ValidationFailed
from omnistock.domain.ids import is_identifier
from omnistock.domain.roles import Principal, stock_write_refusal
from omnistock.domain.stock import MAX_QUANTITY
from omnistock.redis.store import StockStore
from omnistock.settings import Settings
from omnistock.sync.gate import WriteGate
from omnistock.usecases.caches import LocationCache

Format = Literal["csv", "ndjson"]
MAX_ON_HAND = MAX_QUANTITY
MAX_REJECTED = 1000  # listed; beyond that only counted
# Redis is the limit of an import, and a deeper queue of bigger scripts costs it more per row
# (measured): 4 batches of 250 rows keep it busy while queueing at most ~10 ms of its time.
BATCH = 250  # rows per batch: one script call, all of one partition
LANES = 4  # batches in flight at most
WAITING = 16_000  # rows waiting for their batch to fill, at most (then the fullest one goes)
YIELD_EVERY = 32  # rows read between turns of the event loop (a batch waiting its turn goes)
YIELD_LINES = 256  # lines read between turns of the event loop, whatever became of them
PACE_EVERY = 20_000  # rows between back-pressure checks
# Input limits (defaults of the settings import_max_line_bytes, import_max_columns and
# import_max_error_chars; see docs/operations.md "Limits: input and import").
MAX_LINE_BYTES = 64 * 1024
MAX_COLUMNS = 64
MAX_ERROR_CHARS = 200


class ImportLimits(msgspec.Struct, frozen=True, kw_only=True):
    """What one import may make the server hold or say: bytes of one line (a longer one is
    rejected and skipped up to its newline, never buffered), columns of a CSV header, characters
    of one rejection message."""

    line_bytes: int = MAX_LINE_BYTES
    columns: int = MAX_COLUMNS
    error_chars: int = MAX_ERROR_CHARS

    @classmethod
    def from_settings(cls, settings: Settings) -> ImportLimits:
        """The limits ``settings`` set (``import_max_*``)."""
        return cls(
            line_bytes=settings.import_max_line_bytes,
            columns=settings.import_max_columns,
            error_chars=settings.import_max_error_chars,
        )


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


async def _lines(
    chunks: AsyncIterator[bytes], limit: int
) -> AsyncIterator[tuple[int, list[bytes | None]]]:
    """The lines of a byte stream, a chunk's worth at a time, with the number (1-based) of the
    first of them (a line keeps its trailing CR, if any). A line longer than ``limit`` bytes is
    None: its bytes are dropped as they arrive (never buffered past ``limit``) up to its newline,
    where reading resumes. Each byte is looked at a bounded number of times: linear time."""
    number = 1
    tail = bytearray()  # the start of the current line (at most ``limit`` bytes)
    skipping = False  # the current line is already too long
    async for chunk in chunks:
        end = chunk.find(b"\n")
        if end < 0:
            if not skipping:
                tail += chunk
                if len(tail) > limit:
                    skipping = True
                    tail.clear()
            await asyncio.sleep(0)  # a line without end must not hold the event loop
            continue
        lines: list[bytes | None] = []
        if skipping or len(tail) + end > limit:
            lines.append(None)
        else:
            tail += chunk[:end]
            lines.append(bytes(tail))
        tail.clear()
        skipping = False
        rest = chunk[end + 1 :].split(b"\n")
        last = rest.pop()
        lines += [line if len(line) <= limit else None for line in rest]
        if len(last) > limit:
            skipping = True
        else:
            tail += last
        yield number, lines
        number += len(lines)
    if skipping:
        yield number, [None]
    elif tail:
        yield number, [bytes(tail)]


# The common CSV line, matched in one go: identifiers, counts of at most 12 digits (below
# MAX_ON_HAND), other columns of printable ASCII but quotes and commas. Whatever else a line holds
# (quotes, spaces, bigger numbers, errors) goes through _parse_csv, which reads it or says why not.
_ID_RE = r"([A-Za-z0-9._:-]{1,128})"
_COUNT_RE = r"([0-9]{1,12})"
_COUNT_OR_EMPTY_RE = r"([0-9]{0,12})"
_OTHER_RE = r"[\x20\x21\x23-\x2b\x2d-\x7e]*"


def _header(raw: bytes, limits: ImportLimits) -> _CsvColumns:
    """The columns a CSV header names; 422 for one that is not UTF-8, not CSV, or too wide (the
    width is counted before anything else is done with it)."""
    if raw.count(b",") >= limits.columns:
        raise ValidationFailed(
            "body",
            f"CSV header has {raw.count(b',') + 1} columns, at most {limits.columns} are read",
        )
    try:
        return _CsvColumns(_csv_fields(raw))
    except UnicodeDecodeError:
        raise ValidationFailed("body", "CSV header is not UTF-8") from None
    except csv.Error as exc:
        raise ValidationFailed("body", bounded(f"CSV header: {exc}", limits.error_chars)) from None


def bounded(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters (rejections must not echo whole fields)."""
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "\u2026"


FAST_COLUMNS = 8  # headers up to this wide get a fast-path regex (one per layout, cached)


def _no_match(raw: bytes) -> None:
    return None


@functools.lru_cache(maxsize=64)
def _line_pattern(width: int, ours: tuple[int, ...]) -> Callable[[bytes], Any]:
    """The fast-path regex of one column layout (``ours``: the columns of location, sku,
    on_hand[, safety_stock]), compiled once per layout: at most FAST_COLUMNS wide, cached."""
    columns = [_OTHER_RE] * width
    columns[ours[0]] = columns[ours[1]] = _ID_RE
    columns[ours[2]] = _COUNT_RE
    if len(ours) > 3:
        columns[ours[3]] = _COUNT_OR_EMPTY_RE
    return re.compile(",".join(columns).encode()).fullmatch


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
        # Regex groups come in column order: where each of ours is.
        ours = [self.location, self.sku, self.on_hand]
        if self.safety is not None:
            ours.append(self.safety)
        self.groups = [sorted(ours).index(column) + 1 for column in ours]
        # Compiling costs ~0.1 ms per column on the event loop: wide files take the careful path.
        self.simple = (
            _line_pattern(self.width, tuple(ours)) if self.width <= FAST_COLUMNS else _no_match
        )

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


_DIGITS = re.compile(r"[0-9]+")  # ASCII only: str.isdigit() also takes "²", which int() refuses


def _int(value: str, name: str) -> int:
    value = value.strip()
    if _DIGITS.fullmatch(value) is None:
        raise ValueError(f"{name} must be a whole number >= 0, got {value!r}")
    digits = value.lstrip("0")
    # Counted before int(): a number of thousands of digits is not converted just to refuse it.
    if len(digits) > len(str(MAX_ON_HAND)) or int(digits or "0") > MAX_ON_HAND:
        raise ValueError(f"{name} must be at most {MAX_ON_HAND}")
    return int(digits or "0")


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
    if not raw.isascii():
        raw.decode()  # UnicodeDecodeError: msgspec would skip an unknown member unchecked
    try:
        row = _decode_ndjson(raw)
    except msgspec.MsgspecError as exc:
        raise ValueError(str(exc)) from None
    except RecursionError:
        raise ValueError("JSON is nested too deeply") from None
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
    limits: ImportLimits | None = None,
) -> ImportResult:
    """Apply every good line; ``allowed(location)`` returns why a location cannot be written
    (unknown, or not this key's), or None. ``pace`` is awaited between batches (back-pressure).
    A line past ``limits.line_bytes`` is rejected (a CSV header that long: 413, nothing read)."""
    limits = limits or ImportLimits()
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
            result.rejected.append(Rejected(line=line, error=bounded(error, limits.error_chars)))

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
        too_long = f"line longer than {limits.line_bytes} bytes"
        async for first, lines in _lines(chunks, limits.line_bytes):
            for number, line in enumerate(lines, first):
                if number % YIELD_LINES == 0:
                    await asyncio.sleep(0)  # rejected lines queue nothing: a turn by lines too
                if line is None:
                    if fmt == "csv" and cols is None:  # the header: nothing can be read
                        raise PayloadTooLarge(f"CSV header: {too_long}", field="body")
                    reject(number, too_long)
                    continue
                raw = line.rstrip(b"\r")
                count = cols.fast(raw) if cols is not None else None
                if count is None:
                    if not raw.strip():
                        continue
                    if fmt == "csv" and cols is None:
                        cols = _header(raw, limits)
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


def backlog_pacer(
    backlog: Callable[[], Awaitable[int]], limit: int, max_wait: float | None = None
) -> Callable[[], Awaitable[None]]:
    """Between batches, wait while more than ``limit`` changes wait to reach Postgres (a big
    import should not pause every other writer); after ``max_wait`` seconds (None: no cap) the
    write gate decides."""

    async def pace() -> None:
        waited = 0.0
        while await backlog() > limit and (max_wait is None or waited < max_wait):
            await asyncio.sleep(0.1)
            waited += 0.1

    return pace


class Imports:
    """The bulk-import capability of one process (``POST /v1/stock:import``)."""

    def __init__(
        self, store: StockStore, locations: LocationCache, gate: WriteGate, settings: Settings
    ) -> None:
        self._store = store
        self._locations = locations
        self._gate = gate
        self._limits = ImportLimits.from_settings(settings)

    async def run(self, body: AsyncIterator[bytes], fmt: Format, who: Principal) -> ImportResult:
        """Apply the rows of ``body`` that ``who`` may write; the rest are rejected by line."""

        def allowed(location: str) -> str | None:
            if location not in self._locations.by_id:
                return f"unknown location {location!r}"
            return stock_write_refusal(who, location)

        async def backlog() -> int:
            return self._gate.backlog

        return await import_stream(
            body,
            fmt,
            self._store,
            who.name,
            allowed=allowed,
            pace=backlog_pacer(backlog, self._gate.limit // 2, max_wait=30.0),
            limits=self._limits,
        )
