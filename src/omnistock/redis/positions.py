"""Reading positions (one, or many in one round trip) and copying what the scripts need of
each location into Redis."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import msgspec

from omnistock.domain import stock
from omnistock.domain.clock import rfc3339
from omnistock.domain.locations import Location, channel_fence
from omnistock.domain.reservations import CHANNELS
from omnistock.redis import keys
from omnistock.redis.multiplex import Multiplexer, pack
from omnistock.redis.runner import ScriptRunner
from omnistock.redis.scripts import Reply

POSITION_FIELDS = ("oh", "r", "ss", "v", "ts", "u", "in")
# What ``available`` needs of a position (on hand, reserved, own safety stock, unsellable).
_AVAILABLE_FIELDS = ("oh", "r", "ss", "u")
_HMGET_HEAD, _HMGET_TAIL = pack("HMGET", *_AVAILABLE_FIELDS)


class PositionRow(msgspec.Struct, array_like=True):
    """A position as the scripts return it."""

    location: str
    sku: str
    on_hand: int
    reserved: int
    safety_stock: int
    available: int
    status: stock.Status
    version: int
    ts: int
    unsellable: int = 0
    incoming: int = 0

    def public(self) -> stock.Position:
        return stock.Position(
            sku=self.sku,
            location=self.location,
            on_hand=self.on_hand,
            reserved=self.reserved,
            safety_stock=self.safety_stock,
            available=self.available,
            status=self.status,
            version=self.version,
            updated_at=rfc3339(self.ts) if self.version else None,
            unsellable=self.unsellable,
            incoming=self.incoming,
        )


_decode_rows = msgspec.json.Decoder(list[PositionRow]).decode


def _in_order(
    groups: dict[int, list[int]], replies: Sequence[Reply], count: int
) -> tuple[list[stock.Position], bool]:
    """The positions the per-partition calls returned, in input order (none when not asked for),
    and whether every call replayed a recorded reply."""
    if not replies:
        return [], False
    replayed = all(reply.replayed for reply in replies)
    if not replies[0].payload:  # positions not asked for
        return [], replayed
    out: list[stock.Position] = [None] * count  # type: ignore[list-item]
    for indexes, reply in zip(groups.values(), replies, strict=True):
        for index, row in zip(indexes, _decode_rows(reply.payload), strict=True):
            out[index] = row.public()
    return out, replayed


def _int(raw: bytes | None) -> int:
    return int(raw) if raw is not None else 0


def position_from_fields(location: Location, sku: str, fields: Sequence[Any]) -> stock.Position:
    """A position from an HMGET of ``POSITION_FIELDS`` (all None when it does not exist)."""
    on_hand, reserved, own_ss, version, ts, unsellable, incoming = fields
    return stock.position(
        location=location.id,
        sku=sku,
        on_hand=_int(on_hand),
        reserved=_int(reserved),
        safety_stock=int(own_ss) if own_ss is not None else location.safety_stock,
        limited_threshold=location.limited_threshold,
        version=_int(version),
        updated_at=rfc3339(int(ts)) if version is not None and ts is not None else None,
        unsellable=_int(unsellable),
        incoming=_int(incoming),
    )


def location_meta_fields(loc: Location) -> dict[str, int]:
    """The location meta hash the scripts read (_lib.lua's load_loc): safety stock, limited
    threshold and every channel's fence (``c:<channel>``; all channels, so a dropped fence reads 0)."""
    fields = {"ss": loc.safety_stock, "lt": loc.limited_threshold}
    for channel in CHANNELS:
        fields[f"c:{channel}"] = channel_fence(loc, channel)
    return fields


class PositionReads(ScriptRunner):
    """Position reads and location meta."""

    async def put_location_meta(self, locations: Iterable[Location]) -> None:
        """Copy what the scripts need of each location (safety stock, limited threshold, channel
        fences)."""
        async with self.client.pipeline(transaction=False) as pipe:
            for loc in locations:
                key = keys.location_meta(self.partition(loc.id), loc.id)
                pipe.hset(key, mapping=location_meta_fields(loc))
            await pipe.execute()

    async def get_position(self, location: Location, sku: str) -> stock.Position:
        key = keys.position(self.partition(location.id), location.id, sku)
        return position_from_fields(
            location, sku, await self.hot.execute_command("HMGET", key, *POSITION_FIELDS)
        )

    async def get_positions(self, cells: Sequence[tuple[Location, str]]) -> list[stock.Position]:
        """Many positions in one round trip."""
        if len(cells) == 1:
            return [await self.get_position(*cells[0])]
        rows = await self.hot.execute_many(
            [
                ("HMGET", keys.position(self.partition(loc.id), loc.id, sku), *POSITION_FIELDS)
                for loc, sku in cells
            ]
        )
        return [
            position_from_fields(loc, sku, row) for (loc, sku), row in zip(cells, rows, strict=True)
        ]

    async def available_at(self, locations: Sequence[Location], skus: Sequence[str]) -> list[int]:
        """Units available (before any channel fence) of every sku at every location, location
        by location, in one round trip: only what ``available`` needs is read and no position is
        built (a sourcing plan reads hundreds of these)."""
        if type(self.hot) is Multiplexer:  # a cluster one routes each command by its slot
            # Pack the RESP here: no tuple or pack_command per cell (hundreds per plan).
            out = []
            for loc in locations:
                p = self.partition(loc.id)
                for sku in skus:
                    key = keys.position(p, loc.id, sku).encode()
                    out.append(_HMGET_HEAD + b"$%d\r\n%b\r\n" % (len(key), key) + _HMGET_TAIL)
            rows = await self.hot.execute_packed(b"".join(out), len(out))
        else:
            rows = await self.hot.execute_many(
                [
                    (
                        "HMGET",
                        keys.position(self.partition(loc.id), loc.id, sku),
                        *_AVAILABLE_FIELDS,
                    )
                    for loc in locations
                    for sku in skus
                ]
            )
        width = len(skus)
        found = []
        # stock.available, inline (a missing field reads 0; a missing "ss" the location's own).
        for n, (oh, r, ss, u) in enumerate(rows):
            units = (
                (int(oh) if oh is not None else 0)
                - (int(r) if r is not None else 0)
                - (int(ss) if ss is not None else locations[n // width].safety_stock)
                - (int(u) if u is not None else 0)
            )
            found.append(units if units > 0 else 0)
        return found

    async def skus_at(self, location: Location) -> list[str]:
        """Every sku with a position at ``location``, sorted."""
        members = await self.client.smembers(
            keys.sku_index(self.partition(location.id), location.id)
        )
        return sorted(m.decode() for m in members)
