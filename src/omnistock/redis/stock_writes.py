"""Stock mutations: deltas (adjust.lua) and absolute counts and imports (set.lua), one script
call per partition the items touch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from omnistock.domain import stock
from omnistock.domain.commands import Adjustment, Count, Idempotency, Move
from omnistock.redis import keys
from omnistock.redis.positions import _in_order, _int
from omnistock.redis.runner import ScriptRunner, _each_partition
from omnistock.redis.scripts import NOT_ENOUGH, QUANTITY, Reply, check

_pack = msgspec.msgpack.Encoder().encode
_encode = msgspec.json.Encoder().encode
_decode_list = msgspec.json.Decoder(list[Any]).decode


def _renumbered(reply: Reply, indexes: list[int]) -> Reply:
    """A refusal naming its item by its place in the script call, named by its place in ours."""
    if reply.code in (QUANTITY, NOT_ENOUGH):
        index, *rest = _decode_list(reply.payload)
        return reply._replace(payload=_encode([indexes[index], *rest]))
    return reply


class StockWrites(ScriptRunner):
    """Adjustments and counts."""

    async def adjust(
        self, items: Sequence[Adjustment], actor: str, idem: Idempotency | None
    ) -> tuple[list[stock.Position], bool]:
        """Apply deltas; one script call per partition. Returns positions in input order."""
        await self._claim(idem)

        groups = self._by_partition(items)
        if len(groups) > 1:
            await self._check_caps(items)

        async def run(p: int, indexes: list[int]) -> Reply:
            script_keys = [keys.stream(p), self._idem_key(p, idem)]
            script_args = [actor, *self._idem_args(idem)]
            for index in indexes:
                item = items[index]
                script_keys += [
                    keys.position(p, item.location, item.sku),
                    keys.sku_index(p, item.location),
                    keys.location_meta(p, item.location),
                ]
                script_args += [item.location, item.sku, item.delta, item.reason, item.ref or ""]
            states = "".join("u" if items[i].state == "unsellable" else "s" for i in indexes)
            if "u" in states:
                script_args.append(states)
            reply = await self._run(
                self.scripts.adjust,
                p,
                script_keys,
                script_args,
                "",
                tolerate=(QUANTITY, NOT_ENOUGH),
            )
            return check(_renumbered(reply, indexes), "adjustments")

        return _in_order(groups, await _each_partition(groups, run), len(items))

    async def move(
        self, items: Sequence[Move], actor: str, idem: Idempotency | None
    ) -> tuple[list[stock.Position], bool]:
        """Move units between sellable and unsellable (moves.lua); one script call per partition,
        each all or nothing. Returns positions in input order."""
        await self._claim(idem)
        groups = self._by_partition(items)
        if len(groups) > 1:
            await self._check_moves(items)

        async def run(p: int, indexes: list[int]) -> Reply:
            script_keys = [keys.stream(p), self._idem_key(p, idem)]
            script_args: list[Any] = [actor, *self._idem_args(idem)]
            for index in indexes:
                item = items[index]
                script_keys += [
                    keys.position(p, item.location, item.sku),
                    keys.sku_index(p, item.location),
                    keys.location_meta(p, item.location),
                ]
                script_args += [
                    item.location, item.sku, item.qty, item.to, item.reason, item.ref or ""
                ]  # fmt: skip
            reply = await self._run(
                self.scripts.moves, p, script_keys, script_args, "", tolerate=(NOT_ENOUGH,)
            )
            return check(_renumbered(reply, indexes), "moves")

        return _in_order(groups, await _each_partition(groups, run), len(items))

    async def _check_moves(self, items: Sequence[Move]) -> None:
        """Partitions' scripts run apart: check every move against what its state holds first
        (one round trip), so a call spanning partitions is refused before any applies. Each
        script checks again, atomically, before it writes."""
        cells = list(dict.fromkeys((item.location, item.sku) for item in items))
        found = await self.hot.execute_many(
            [
                ("HMGET", keys.position(self.partition(loc), loc, sku), "oh", "u")
                for loc, sku in cells
            ]
        )
        running = {cell: [_int(oh), _int(u)] for cell, (oh, u) in zip(cells, found, strict=True)}
        for index, item in enumerate(items):
            oh_u = running[(item.location, item.sku)]
            to_unsellable = item.to == "unsellable"
            state, there = ("sellable", max(0, oh_u[0] - oh_u[1])) if to_unsellable else (
                "unsellable", oh_u[1])  # fmt: skip
            if item.qty > there:
                payload = _encode([index, item.location, item.sku, state, item.qty, there])
                check(Reply(NOT_ENOUGH, payload, False, b"", b""), "moves")
            oh_u[1] += item.qty if to_unsellable else -item.qty

    async def _check_caps(self, items: Sequence[Adjustment]) -> None:
        """Partitions' scripts run apart, so one refusing a result past the quantity cap would
        leave the others applied: check every result first (one round trip). Each script checks
        again, atomically, before it writes."""
        cells = list(dict.fromkeys((item.location, item.sku) for item in items))
        found = await self.hot.execute_many(
            [("HGET", keys.position(self.partition(loc), loc, sku), "oh") for loc, sku in cells]
        )
        running = {cell: _int(raw) for cell, raw in zip(cells, found, strict=True)}
        for index, item in enumerate(items):
            cell = (item.location, item.sku)
            running[cell] += item.delta
            if abs(running[cell]) > stock.MAX_QUANTITY:
                reply = Reply(QUANTITY, _encode([index, "delta", running[cell]]), False, b"", b"")
                check(reply, "adjustments")

    async def set_counts(
        self,
        items: Sequence[Count],
        actor: str,
        idem: Idempotency | None,
        kind: str = "set",
        *,
        positions: bool = True,
    ) -> tuple[list[stock.Position], bool]:
        """Set absolute on_hand (and own safety stock); unchanged positions emit nothing.
        Without ``positions`` (bulk imports) the resulting positions are not returned, and the
        calls go through the pool: a storefront read waits behind one import batch at most, not
        behind every batch queued on the request connection.
        One script call per partition the items touch (concurrently)."""
        await self._claim(idem)
        groups = self._by_partition(items)

        async def run(p: int, indexes: list[int]) -> Reply:
            script_keys, script_args = self._set_call(
                p, [items[i] for i in indexes], actor, idem, kind, positions
            )
            return await self._run(
                self.scripts.set, p, script_keys, script_args, "", bulk=not positions
            )

        return _in_order(groups, await _each_partition(groups, run), len(items))

    def _set_call(
        self,
        p: int,
        items: Sequence[Count],
        actor: str,
        idem: Idempotency | None,
        kind: str,
        positions: bool,
    ) -> tuple[list[str], list[Any]]:
        """The KEYS and ARGV of set.lua for items of partition ``p``: each location's keys once,
        a position key per item, and the items as one MessagePack array (see set.lua)."""
        slots: dict[str, int] = {}  # location -> its index in the call
        position_keys: list[str] = []
        rows: list[Any] = []
        for item in items:
            slot = slots.get(item.location)
            if slot is None:
                slot = slots[item.location] = len(slots)
            position_keys.append(keys.position(p, item.location, item.sku))
            ss = item.safety_stock
            rows += (
                slot,
                item.sku,
                item.on_hand,
                "" if ss is None else ("-" if ss < 0 else ss),
                "" if item.expected_version is None else item.expected_version,
                item.reason,
                item.ref or "",
            )
        script_keys = [keys.stream(p), self._idem_key(p, idem)]
        for location in slots:
            script_keys += (keys.location_meta(p, location), keys.sku_index(p, location))
        script_keys += position_keys
        script_args = [
            actor,
            *self._idem_args(idem),
            kind,
            "1" if positions else "0",
            _pack(list(slots)),
            _pack(rows),
        ]
        return script_keys, script_args
