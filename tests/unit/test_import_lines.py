"""Splitting an import body into lines: what a plain split gives, whatever the chunking, with lines
past the limit replaced by None; linear in the body, never buffering more than one line."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator

import pytest

from omnistock.domain.commands import Count
from omnistock.domain.errors import ValidationFailed
from omnistock.usecases.imports import (
    ImportLimits,
    _header,
    _line_pattern,
    _lines,
    _parse_csv,
    bounded,
)


def expected(body: bytes, limit: int) -> list[bytes | None]:
    pieces = body.split(b"\n")
    if pieces[-1] == b"":
        pieces.pop()
    return [piece if len(piece) <= limit else None for piece in pieces]


async def chunked(body: bytes, sizes: list[int]) -> AsyncIterator[bytes]:
    at = 0
    for size in sizes:
        yield body[at : at + size]
        at += size
    if at < len(body):
        yield body[at:]


async def split(chunks: AsyncIterator[bytes], limit: int) -> list[bytes | None]:
    out: list[bytes | None] = []
    async for first, lines in _lines(chunks, limit):
        assert first == len(out) + 1  # numbered as written
        out += lines
    return out


async def test_lines_match_a_plain_split_whatever_the_chunks() -> None:
    rng = random.Random(7)
    for _ in range(400):
        limit = rng.choice([1, 3, 8, 20])
        body = bytes(rng.choice(b"ab\n\r") for _ in range(rng.randint(0, 120)))
        sizes = [rng.randint(1, 30) for _ in range(len(body))]
        assert await split(chunked(body, sizes), limit) == expected(body, limit), (body, limit)


async def test_a_line_without_end_costs_linear_time() -> None:
    """64 MB of one line in 16 KiB chunks: dropped as it arrives. (Before, every chunk copied
    the whole line so far: about 130 GB of copying.)"""
    chunk = b"x" * (16 << 10)

    async def body() -> AsyncIterator[bytes]:
        yield b"a,b,c\n"
        for _ in range(4096):
            yield chunk
        yield b"\nd,e,f"

    started = time.perf_counter()
    assert await split(body(), 64 << 10) == [b"a,b,c", None, b"d,e,f"]
    assert time.perf_counter() - started < 10


async def test_a_line_without_end_lets_the_loop_run() -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    async def body() -> AsyncIterator[bytes]:
        for _ in range(200):
            yield b"x" * 1024

    task = asyncio.create_task(ticker())
    await split(body(), 100)
    task.cancel()
    assert ticks >= 100


def test_header_limits() -> None:
    limits = ImportLimits(columns=6)
    assert _header(b"location,sku,on_hand,a,b,c", limits).width == 6
    for header in (b"location,sku,on_hand,a,b,c,d", b"," * 80_000):
        with pytest.raises(ValidationFailed, match="columns"):
            _header(header, limits)
    with pytest.raises(ValidationFailed, match="UTF-8"):
        _header(b"location,sku,on_hand\xff", limits)
    with pytest.raises(ValidationFailed, match="missing"):
        _header(b"sku,on_hand", limits)


def test_bounded_text() -> None:
    assert bounded("abc", 3) == "abc"
    assert bounded("x" * 1_000_000, 200) == "x" * 199 + "\u2026"


def test_wide_headers_compile_nothing_and_parse_carefully() -> None:
    """A regex per layout costs ~0.1 ms a column on the event loop: only narrow headers get one
    (and the layouts are cached), wider ones take the careful parser."""
    names = [f"c{i}" for i in range(60)] + ["on_hand", "sku", "location", "safety_stock"]
    cols = _header(",".join(names).encode(), ImportLimits())
    line = ",".join(["x"] * 60 + ["7", "S-1", "L1", ""]).encode()
    assert cols.fast(line) is None
    assert _parse_csv(line, cols) == Count("L1", "S-1", 7, None, None, "import")
    _line_pattern.cache_clear()
    for header in (b"location,sku,on_hand", b"sku,location,on_hand,safety_stock,note"):
        _header(header, ImportLimits())
        _header(header, ImportLimits())
    assert _line_pattern.cache_info().currsize == 2 and _line_pattern.cache_info().misses == 2
