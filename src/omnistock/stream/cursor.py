"""Cursors: opaque, compact, URL-safe tokens of per-partition stream positions.

A position is a stream entry id ``ms-seq`` packed into one int (``ms << 64 | seq``); 0 is "before
any entry". Resuming from a cursor replays, per partition, the entries after its position.

Layout (then base64url without padding): version byte, varint P, varint ``base`` (the newest ms
of all positions), and per partition one varint ``z``: 0 for position 0, else
``((base - ms) << 1 | has_seq) + 1``, followed by varint ``seq`` when ``has_seq``. Positions of
busy partitions lie within a few ms of each other, so most take one or two bytes: a 64-partition
cursor is typically 100-250 characters.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence

VERSION = 1
SEQ_BITS = 64
SEQ_MASK = (1 << SEQ_BITS) - 1
_MAX_MS = 1 << 48  # year 10889
_MAX_VARINT_BYTES = 10
_ALPHABET = re.compile(r"^[A-Za-z0-9_-]+$")


class CursorError(ValueError):
    """A token that is not a cursor of this deployment; the message says why, for the client."""


def pack(ms: int, seq: int) -> int:
    return (ms << SEQ_BITS) | seq


def parse_id(raw: bytes | str) -> int:
    """``b"1700000000000-3"`` -> its packed position."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    ms, _, seq = text.partition("-")
    return pack(int(ms), int(seq or 0))


def format_id(position: int) -> str:
    """A packed position as a stream id (``ms-seq``) for XREAD / XRANGE."""
    return f"{position >> SEQ_BITS}-{position & SEQ_MASK}"


def _varint(value: int, out: bytearray) -> None:
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def encode(positions: Sequence[int]) -> str:
    """The cursor of ``positions`` (one per partition)."""
    base = max(positions, default=0) >> SEQ_BITS
    out = bytearray((VERSION,))
    _varint(len(positions), out)
    _varint(base, out)
    for position in positions:
        if position == 0:
            out.append(0)
            continue
        seq = position & SEQ_MASK
        _varint((((base - (position >> SEQ_BITS)) << 1) | (seq != 0)) + 1, out)
        if seq:
            _varint(seq, out)
    return base64.urlsafe_b64encode(out).rstrip(b"=").decode()


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def varint(self) -> int:
        value = shift = 0
        for _ in range(_MAX_VARINT_BYTES):
            if self.at >= len(self.data):
                raise CursorError("cursor is truncated")
            byte = self.data[self.at]
            self.at += 1
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
        raise CursorError("cursor is corrupt")


def decode(token: str, partitions: int) -> list[int]:
    """The positions of ``token``; :class:`CursorError` for anything that is not a cursor of a
    deployment with ``partitions`` partitions."""
    if not token or len(token) > 64 + partitions * 32:
        raise CursorError("not a cursor (empty or too long)")
    if _ALPHABET.match(token) is None:
        raise CursorError("not a cursor (bad characters)")
    try:
        data = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise CursorError("not a cursor (bad characters)") from None
    if not data or data[0] != VERSION:
        raise CursorError("not a cursor of this server version")
    reader = _Reader(data)
    reader.at = 1
    count = reader.varint()
    if count != partitions:
        raise CursorError(f"cursor has {count} partitions, this deployment has {partitions}")
    base = reader.varint()
    if base >= _MAX_MS:
        raise CursorError("cursor is corrupt")
    positions: list[int] = []
    for _ in range(count):
        z = reader.varint()
        if z == 0:
            positions.append(0)
            continue
        delta, has_seq = (z - 1) >> 1, (z - 1) & 1
        seq = reader.varint() if has_seq else 0
        if delta > base or seq > SEQ_MASK or (has_seq and seq == 0):
            raise CursorError("cursor is corrupt")
        positions.append(pack(base - delta, seq))
    if reader.at != len(data):
        raise CursorError("cursor has trailing data")
    return positions
