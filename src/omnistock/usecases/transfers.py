"""Transfers: stock on its way from one location to another. Redis holds the open ones (the
record at ``from``, the shadow at ``to``) and finished ones for a while; Postgres every one, for
lists and for those Redis no longer keeps. Every call drives the transfer to a settled state
before it answers (the courier does the same for a call that crashed)."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from omnistock.domain.commands import IdemOf
from omnistock.domain.errors import NotFound, TransferConflict, ValidationFailed
from omnistock.domain.ids import new_transfer_id, transfer_partition
from omnistock.domain.roles import Principal, require_stock_write
from omnistock.domain.transfers import OPEN, StoredTransfer, TransferView, decode_transfer, view
from omnistock.postgres import transfers as transfer_table
from omnistock.redis.store import StockStore
from omnistock.usecases.caches import LocationCache


def _decoded(raw: str | None) -> StoredTransfer | None:
    return decode_transfer(raw) if raw is not None else None


class Transfers:
    """The transfer capability of one process."""

    def __init__(self, db: asyncpg.Pool, store: StockStore, locations: LocationCache) -> None:
        self._db = db
        self._store = store
        self._locations = locations

    async def create(
        self,
        who: Principal,
        source: str,
        to: str,
        eta_ms: int | None,
        lines: Sequence[tuple[str, int]],
        ref: str | None,
        idem: IdemOf,
    ) -> tuple[TransferView, bool]:
        """Move ``lines`` (distinct skus) from ``source`` to ``to``: the units leave ``source``
        (all or none, 409 shortages) and become incoming at ``to``."""
        require_stock_write(who, source)
        if source == to:
            raise ValidationFailed("to", "a transfer goes to another location than `from`")
        await self._locations.require(source)
        await self._locations.require(to)
        record, replayed = await self._store.create_transfer(
            transfer_id=new_transfer_id(self._store.partition(source)),
            source=source,
            to=to,
            eta_ms=eta_ms,
            ref=ref,
            lines=lines,
            actor=who.name,
            idem=idem(),
        )
        if record.pending:  # (a replay too: the first call may have died before its `to` side)
            await self._store.drive_transfer(record, who.name)
        # The answer is the transfer as created (its recorded reply), so a replay is identical.
        return view(record, None), replayed

    async def _sides(self, transfer_id: str) -> tuple[StoredTransfer | None, StoredTransfer | None]:
        """The record and the shadow (Redis, else Postgres); NotFound when neither has it."""
        transfer_partition(transfer_id, self._store.partitions)  # 404 for ids not ours
        record = await self._store.get_transfer(transfer_id)
        if record is not None:
            return record, await self._store.get_shadow(record.to, transfer_id)
        found = await transfer_table.docs(self._db, transfer_id)
        if found is None:
            raise NotFound(f"transfer {transfer_id!r} not found")
        pg_record, pg_shadow = _decoded(found[0]), _decoded(found[1])
        base = pg_record or pg_shadow
        assert base is not None
        shadow = await self._store.get_shadow(base.to, transfer_id) or pg_shadow
        return pg_record, shadow

    async def get(self, transfer_id: str) -> TransferView:
        """The transfer as clients see it."""
        return view(*await self._sides(transfer_id))

    async def receive(
        self,
        who: Principal,
        transfer_id: str,
        lines: Sequence[tuple[str, int]] | None,
        over_receipt: bool,
        idem: IdemOf,
    ) -> tuple[TransferView, bool]:
        """Receive ``lines`` (None: everything outstanding) at the transfer's ``to``."""
        record, shadow = await self._sides(transfer_id)
        base = record or shadow
        assert base is not None
        require_stock_write(who, base.to)
        if record is not None and record.pending and record.status == "in_transit":
            record = await self._store.drive_transfer(record, who.name)  # arrive first
        status = view(record, shadow).status
        try:
            shadow, replayed = await self._store.receive_transfer(
                base, lines, over_receipt, who.name, idem()
            )
        except NotFound:
            if record is not None and record.status == "cancelling":
                # Cancelled before its `to` side was written: nothing will arrive.
                raise TransferConflict(
                    f"transfer {transfer_id} is being cancelled: nothing will arrive",
                    transfer_status=status,
                ) from None
            if status in OPEN:
                raise
            raise TransferConflict(
                f"transfer {transfer_id} is {status}: nothing is outstanding",
                transfer_status=status,
            ) from None
        if shadow.status == "received":  # the record follows (retention), best effort
            await self._store.confirm_transfer(transfer_id, "in_transit", "received", who.name)
        record = await self._store.get_transfer(transfer_id) or record
        return view(record, shadow), replayed

    async def cancel(
        self, who: Principal, transfer_id: str, idem: IdemOf
    ) -> tuple[TransferView, bool]:
        """Cancel a transfer nothing of which was received: the units go back on hand at
        ``from``. After a receipt: 409 with its ``transfer_status``."""
        record, shadow = await self._sides(transfer_id)
        base = record or shadow
        assert base is not None
        require_stock_write(who, base.from_)
        key = idem()
        try:
            begun, replayed = await self._store.begin_cancel(transfer_id, who.name, key)
        except NotFound:  # finished and past its retention in Redis: only Postgres has it
            status = view(record, shadow).status
            if status in OPEN:
                raise
            raise TransferConflict(
                f"transfer {transfer_id} is {status}: it cannot be cancelled",
                transfer_status=status,
            ) from None
        if replayed:  # the recorded reply: the record as the cancel left it
            return view(begun, None), True
        done = await self._store.drive_transfer(begun, who.name, key)
        if done.status == "cancelled":
            return view(done, None), False
        current = await self.get(transfer_id)
        raise TransferConflict(
            f"transfer {transfer_id} is {current.status}: units were received, it cannot "
            "be cancelled",
            transfer_status=current.status,
        )

    async def page(
        self, location: str | None, status: str | None, before: str | None, limit: int
    ) -> tuple[list[TransferView], bool]:
        """Up to ``limit`` transfers newest first (``location``: from or to), older than
        ``before`` (the id of the previous page's last item), and whether more follow."""
        if before is not None and not await transfer_table.exists(self._db, before):
            raise ValidationFailed("before", f"no transfer {before!r}")
        raw = await transfer_table.page(self._db, location, status, before, limit + 1)
        items = [view(_decoded(a), _decoded(b)) for a, b in raw[:limit]]
        return items, len(raw) > limit
