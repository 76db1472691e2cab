"""Supply: stock expected at a location by an ETA. Redis holds the open ones (and finished ones
for a while); Postgres every one, for lists and for those Redis no longer keeps."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence

import asyncpg

from omnistock.domain.commands import IdemOf
from omnistock.domain.errors import NotFound, SupplyFinished, ValidationFailed
from omnistock.domain.ids import new_supply_id, supply_partition
from omnistock.domain.roles import Principal, require_stock_write
from omnistock.domain.supply import StoredSupply, decode_supply
from omnistock.postgres import supply as supply_table
from omnistock.redis.store import StockStore
from omnistock.usecases.caches import LocationCache


class Supply:
    """The supply capability of one process."""

    def __init__(self, db: asyncpg.Pool, store: StockStore, locations: LocationCache) -> None:
        self._db = db
        self._store = store
        self._locations = locations

    async def create(
        self,
        who: Principal,
        location: str,
        eta_ms: int,
        lines: Sequence[tuple[str, int]],
        kind: str,
        ref: str | None,
        idem: IdemOf,
    ) -> tuple[StoredSupply, bool]:
        """Record a supply at ``location``: its lines (distinct skus) become incoming."""
        require_stock_write(who, location)
        await self._locations.require(location)
        return await self._store.create_supply(
            supply_id=new_supply_id(self._store.partition(location)),
            location=location,
            eta_ms=eta_ms,
            kind=kind,
            ref=ref,
            lines=lines,
            actor=who.name,
            idem=idem(),
        )

    async def get(self, supply_id: str) -> StoredSupply:
        """The supply (Redis, else Postgres); NotFound when neither has it."""
        doc = await self._store.get_supply(supply_id)
        if doc is not None:
            return doc
        raw = await supply_table.doc(self._db, supply_id)
        if raw is None:
            raise NotFound(f"supply {supply_id!r} not found")
        return decode_supply(raw)

    async def _open(self, who: Principal, supply_id: str) -> tuple[StoredSupply, bool]:
        """The supply to change, once ``who`` may write at its location, and whether only
        Postgres still has it (finished, past its retention in Redis). Whether it is still open
        is the script's to say, atomically and after replaying a retried request."""
        supply_partition(supply_id, self._store.partitions)  # 404 for ids not ours
        doc = await self._store.get_supply(supply_id)
        gone = doc is None
        if doc is None:
            doc = await self.get(supply_id)
        require_stock_write(who, doc.location)
        return doc, gone

    async def _run(
        self, doc: StoredSupply, gone: bool, call: Awaitable[tuple[StoredSupply, bool]]
    ) -> tuple[StoredSupply, bool]:
        """Run the script call; for a supply Redis no longer keeps it can only replay a recorded
        reply (an Idempotency-Key within its 24 h), else the answer is the finished supply's 409."""
        try:
            return await call
        except NotFound:
            if not gone:
                raise
            raise SupplyFinished(
                f"supply {doc.id} is {doc.status}: nothing is outstanding",
                supply_status=doc.status,
            ) from None

    async def receive(
        self,
        who: Principal,
        supply_id: str,
        lines: Sequence[tuple[str, int]] | None,
        over_receipt: bool,
        idem: IdemOf,
    ) -> tuple[StoredSupply, bool]:
        """Receive ``lines`` (None: everything outstanding)."""
        doc, gone = await self._open(who, supply_id)
        call = self._store.receive_supply(doc, lines, over_receipt, who.name, idem())
        return await self._run(doc, gone, call)

    async def reschedule(
        self, who: Principal, supply_id: str, eta_ms: int, idem: IdemOf
    ) -> tuple[StoredSupply, bool]:
        """Move the supply's ETA."""
        doc, gone = await self._open(who, supply_id)
        return await self._run(
            doc, gone, self._store.reschedule_supply(doc, eta_ms, who.name, idem())
        )

    async def cancel(
        self, who: Principal, supply_id: str, idem: IdemOf
    ) -> tuple[StoredSupply, bool]:
        """Cancel the supply: what is outstanding leaves incoming."""
        doc, gone = await self._open(who, supply_id)
        return await self._run(doc, gone, self._store.cancel_supply(doc, who.name, idem()))

    async def page(
        self,
        location: str | None,
        sku: str | None,
        status: str | None,
        before: str | None,
        limit: int,
    ) -> tuple[list[StoredSupply], bool]:
        """Up to ``limit`` supplies newest first, older than ``before`` (the id of the previous
        page's last item: ``next``), and whether more follow."""
        if before is not None and not await supply_table.exists(self._db, before):
            raise ValidationFailed("before", f"no supply {before!r}")
        raw = await supply_table.page(self._db, location, sku, status, before, limit + 1)
        return [decode_supply(doc) for doc in raw[:limit]], len(raw) > limit
