"""Supply in Redis: read a supply, create, receive, reschedule and cancel it (one script each,
all in the partition of its location), and units due by a date from the incoming schedules."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from omnistock.domain import stock
from omnistock.domain.commands import Idempotency
from omnistock.domain.ids import supply_partition
from omnistock.domain.locations import Location
from omnistock.domain.supply import Due, StoredSupply, decode_supply, due_with_scores
from omnistock.redis import keys
from omnistock.redis.positions import POSITION_FIELDS, position_from_fields
from omnistock.redis.runner import ScriptRunner
from omnistock.redis.scripts import NOT_ENOUGH, NOT_IN_SUPPLY, QUANTITY, Script, check

_decode_list = msgspec.json.Decoder(list[Any]).decode
_encode = msgspec.json.Encoder().encode


class SupplyOps(ScriptRunner):
    """Supply: every change through its script."""

    async def get_supply(self, supply_id: str) -> StoredSupply | None:
        """The supply as Redis keeps it (None: unknown here, or finished and past retention)."""
        p = supply_partition(supply_id, self.partitions)
        raw = await self.hot.execute_command("HGET", keys.supply(p, supply_id), "doc")
        return decode_supply(raw) if raw is not None else None

    def _supply_keys(self, p: int, idem: Idempotency | None, doc: StoredSupply) -> list[str]:
        return self._layout(p, idem, doc.id, doc.location, [line.sku for line in doc.lines])

    def _layout(
        self, p: int, idem: Idempotency | None, supply_id: str, location: str, skus: Sequence[str]
    ) -> list[str]:
        """_lib.lua's supply KEYS layout."""
        out = [
            keys.stream(p),
            self._idem_key(p, idem),
            keys.supply(p, supply_id),
            keys.supply_open(p),
            keys.location_meta(p, location),
            keys.sku_index(p, location),
        ]
        for sku in skus:
            out += (keys.position(p, location, sku), keys.incoming_schedule(p, location, sku))
        return out

    async def create_supply(
        self,
        *,
        supply_id: str,
        location: str,
        eta_ms: int,
        kind: str,
        ref: str | None,
        lines: Sequence[tuple[str, int]],
        actor: str,
        idem: Idempotency | None,
    ) -> tuple[StoredSupply, bool]:
        """Record a supply; its lines (distinct skus) become incoming. Returns it and whether
        the reply was replayed."""
        await self._claim(idem)
        p = self.partition(location)
        script_keys = self._layout(p, idem, supply_id, location, [sku for sku, _ in lines])
        args: list[Any] = [
            actor,
            *self._idem_args(idem),
            self._supply_retention_ms,
            supply_id,
            location,
        ]
        args += [eta_ms, kind, ref or ""]
        for sku, qty in lines:
            args += (sku, qty)
        reply = await self._run(
            self.scripts.supply_create, p, script_keys, args, supply_id, tolerate=(QUANTITY,)
        )
        check(reply, "lines" if reply.code == QUANTITY else supply_id)
        return decode_supply(reply.payload), reply.replayed

    async def receive_supply(
        self,
        doc: StoredSupply,
        lines: Sequence[tuple[str, int]] | None,
        over_receipt: bool,
        actor: str,
        idem: Idempotency | None,
    ) -> tuple[StoredSupply, bool]:
        """Receive ``lines`` (None: everything outstanding) of supply ``doc`` (as read)."""
        extra: list[Any] = ["1" if over_receipt else "0", "0" if lines is None else "1"]
        for sku, qty in lines or ():
            extra += (sku, qty)
        return await self._supply_op(self.scripts.supply_receive, doc, extra, actor, idem)

    async def reschedule_supply(
        self, doc: StoredSupply, eta_ms: int, actor: str, idem: Idempotency | None
    ) -> tuple[StoredSupply, bool]:
        """Move supply ``doc``'s ETA (its outstanding units move in the schedules)."""
        return await self._supply_op(self.scripts.supply_reschedule, doc, [eta_ms], actor, idem)

    async def cancel_supply(
        self, doc: StoredSupply, actor: str, idem: Idempotency | None
    ) -> tuple[StoredSupply, bool]:
        """Cancel supply ``doc``: what is outstanding leaves incoming."""
        return await self._supply_op(self.scripts.supply_cancel, doc, [], actor, idem)

    async def _supply_op(
        self,
        script: Script,
        doc: StoredSupply,
        extra: list[Any],
        actor: str,
        idem: Idempotency | None,
    ) -> tuple[StoredSupply, bool]:
        await self._claim(idem)
        p = supply_partition(doc.id, self.partitions)
        script_keys = self._supply_keys(p, idem, doc)
        args: list[Any] = [actor, *self._idem_args(idem), self._supply_retention_ms, *extra]
        reply = await self._run(
            script, p, script_keys, args, doc.id, tolerate=(NOT_ENOUGH, NOT_IN_SUPPLY, QUANTITY)
        )
        # Refusals naming a request line name it as lines[i]; the others name the supply.
        check(reply, "lines" if reply.code in (NOT_ENOUGH, QUANTITY) else doc.id)
        return decode_supply(reply.payload), reply.replayed

    async def positions_due(
        self, cells: Sequence[tuple[Location, str]], by_ms: int
    ) -> tuple[list[stock.Position], list[int]]:
        """The positions of (location, sku) cells and the units due at each with an ETA at or
        before ``by_ms`` (:meth:`positions_due_next`'s units)."""
        positions, due = await self.positions_due_next(cells, by_ms)
        return positions, [d.units for d in due]

    async def positions_due_next(
        self, cells: Sequence[tuple[Location, str]], by_ms: int
    ) -> tuple[list[stock.Position], list[Due]]:
        """The positions of (location, sku) cells and what is due at each by ``by_ms``: units,
        and the earliest ETA with its units. An HMGET and one range read (with scores) per
        position, in one round trip."""
        commands: list[tuple[Any, ...]] = []
        for loc, sku in cells:
            p = self.partition(loc.id)
            commands.append(("HMGET", keys.position(p, loc.id, sku), *POSITION_FIELDS))
            commands.append(
                (
                    "ZRANGEBYSCORE",
                    keys.incoming_schedule(p, loc.id, sku),
                    "-inf",
                    by_ms,
                    "WITHSCORES",
                )
            )
        found = await self.hot.execute_many(commands)
        positions = [
            position_from_fields(loc, sku, row)
            for (loc, sku), row in zip(cells, found[::2], strict=True)
        ]
        return positions, [due_with_scores(members) for members in found[1::2]]
