"""Transfers in Redis (domain/transfers.py): the record's scripts in the partition of ``from``
(create, confirm, cancel, cancelled, claim), the shadow's in the partition of ``to`` (arrive,
receive, withdraw), and ``drive_transfer``, the one routine that settles a pending record, used by
the serving path and by the worker's courier alike."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from omnistock.domain.commands import Idempotency
from omnistock.domain.ids import transfer_partition
from omnistock.domain.transfers import StoredTransfer, decode_transfer, encode_transfer
from omnistock.redis import keys
from omnistock.redis.runner import ScriptRunner
from omnistock.redis.scripts import (
    NO_TRANSFER,
    NOT_DUE,
    NOT_ENOUGH,
    OK,
    QUANTITY,
    TRANSFER_DONE,
    TRANSFER_STATE,
    Reply,
    Script,
    check,
)


class TransferOps(ScriptRunner):
    """Transfers: every change through its script."""

    transfer_lease_ms: int = 1000
    transfer_retention_ms: int = 3_600_000

    async def get_transfer(self, transfer_id: str) -> StoredTransfer | None:
        """The record (None: unknown here, or finished and past retention)."""
        p = transfer_partition(transfer_id, self.partitions)
        raw = await self.hot.execute_command("HGET", keys.transfer(p, transfer_id), "doc")
        return decode_transfer(raw) if raw is not None else None

    async def get_shadow(self, to: str, transfer_id: str) -> StoredTransfer | None:
        """The ``to`` side of a transfer to location ``to`` (None: not written, or gone)."""
        key = keys.transfer_shadow(self.partition(to), transfer_id)
        raw = await self.hot.execute_command("HGET", key, "doc")
        return decode_transfer(raw) if raw is not None else None

    def _transfer_keys(
        self, p: int, idem: Idempotency | None, transfer_id: str, lines_at: str | None = None,
        skus: Sequence[str] = (),
    ) -> list[str]:  # fmt: skip
        """_lib.lua's record layout (with ``lines_at``: that location's meta, index, positions)."""
        out = [
            keys.stream(p),
            self._idem_key(p, idem),
            keys.transfer(p, transfer_id),
            keys.transfer_pending(p),
        ]
        if lines_at is not None:
            out += (keys.location_meta(p, lines_at), keys.sku_index(p, lines_at))
            out += (keys.position(p, lines_at, sku) for sku in skus)
        return out

    def _shadow_keys(self, idem: Idempotency | None, doc: StoredTransfer) -> tuple[int, list[str]]:
        """The partition of ``to`` and _lib.lua's shadow layout."""
        q = self.partition(doc.to)
        out = [
            keys.stream(q),
            self._idem_key(q, idem),
            keys.transfer_shadow(q, doc.id),
            keys.location_meta(q, doc.to),
            keys.sku_index(q, doc.to),
        ]
        for line in doc.lines:
            out += (keys.position(q, doc.to, line.sku), keys.incoming_schedule(q, doc.to, line.sku))
        return q, out

    async def create_transfer(
        self,
        *,
        transfer_id: str,
        source: str,
        to: str,
        eta_ms: int | None,
        ref: str | None,
        lines: Sequence[tuple[str, int]],
        actor: str,
        idem: Idempotency | None,
    ) -> tuple[StoredTransfer, bool]:
        """The first step: record the transfer (pending) and take its units off on hand at
        ``source``, all lines or none (409 shortages). Returns the record and whether the reply
        was replayed. The ``to`` side is ``drive_transfer``'s."""
        await self._claim(idem)
        p = transfer_partition(transfer_id, self.partitions)
        skus = [sku for sku, _ in lines]
        args: list[Any] = [actor, *self._idem_args(idem), self.transfer_lease_ms, transfer_id]
        args += [source, to, "" if eta_ms is None else eta_ms, ref or ""]
        for sku, qty in lines:
            args += (sku, qty)
        reply = await self._run(
            self.scripts.transfer_create,
            p,
            self._transfer_keys(p, idem, transfer_id, source, skus),
            args,
            transfer_id,
        )
        return decode_transfer(reply.payload), reply.replayed

    async def arrive_transfer(self, record: StoredTransfer, actor: str) -> StoredTransfer:
        """Write the ``to`` side (once; a replay answers the shadow as it is)."""
        q, script_keys = self._shadow_keys(None, record)
        reply = await self._run(
            self.scripts.transfer_arrive,
            q,
            script_keys,
            [actor, *self._idem_args(None), encode_transfer(record)],
            record.id,
            gated=False,  # the units have left `from`: finishing must not be held back
        )
        return decode_transfer(reply.payload)

    async def confirm_transfer(
        self, transfer_id: str, expected: str, shadow_status: str, actor: str
    ) -> Reply:
        """The ``to`` side is settled: the record (if still ``expected``) leaves pending."""
        return await self._on_transfer(
            self.scripts.transfer_confirm,
            transfer_id,
            actor,
            [expected, shadow_status, self.transfer_retention_ms],
        )

    async def receive_transfer(
        self,
        record: StoredTransfer,
        lines: Sequence[tuple[str, int]] | None,
        over_receipt: bool,
        actor: str,
        idem: Idempotency | None,
    ) -> tuple[StoredTransfer, bool]:
        """Receive ``lines`` (None: everything outstanding) at ``to``; the shadow after it."""
        await self._claim(idem)
        q, script_keys = self._shadow_keys(idem, record)
        args: list[Any] = [actor, *self._idem_args(idem), self.transfer_retention_ms]
        args += ["1" if over_receipt else "0", "0" if lines is None else "1"]
        for sku, qty in lines or ():
            args += (sku, qty)
        reply = await self._run(
            self.scripts.transfer_receive,
            q,
            script_keys,
            args,
            record.id,
            tolerate=(NOT_ENOUGH, QUANTITY),
        )
        check(reply, "lines" if reply.code in (NOT_ENOUGH, QUANTITY) else record.id)
        return decode_transfer(reply.payload), reply.replayed

    async def begin_cancel(
        self, transfer_id: str, actor: str, idem: Idempotency | None
    ) -> tuple[StoredTransfer, bool]:
        """in_transit -> cancelling (pending): the record, and whether a finished cancel with
        this Idempotency-Key was replayed instead."""
        await self._claim(idem)
        p = transfer_partition(transfer_id, self.partitions)
        reply = await self._run(
            self.scripts.transfer_cancel,
            p,
            self._transfer_keys(p, idem, transfer_id),
            [actor, *self._idem_args(idem), self.transfer_lease_ms],
            transfer_id,
        )
        return decode_transfer(reply.payload), reply.replayed

    async def withdraw_transfer(self, record: StoredTransfer, actor: str) -> Reply:
        """The ``to`` side of a cancel: OK (withdrawn) or TRANSFER_STATE (units received)."""
        q, script_keys = self._shadow_keys(None, record)
        return await self._run(
            self.scripts.transfer_withdraw,
            q,
            script_keys,
            [actor, *self._idem_args(None), encode_transfer(record)],
            record.id,
            tolerate=(TRANSFER_STATE,),
            gated=False,
        )

    async def finish_cancel(
        self, record: StoredTransfer, actor: str, idem: Idempotency | None
    ) -> Reply:
        """cancelling -> cancelled, the units back on hand at ``from``: OK, TRANSFER_DONE
        (cancelled already) or TRANSFER_STATE (not cancelling)."""
        p = transfer_partition(record.id, self.partitions)
        skus = [line.sku for line in record.lines]
        return await self._run(
            self.scripts.transfer_cancelled,
            p,
            self._transfer_keys(p, idem, record.id, record.from_, skus),
            [actor, *self._idem_args(idem), self.transfer_retention_ms],
            record.id,
            tolerate=(TRANSFER_STATE, TRANSFER_DONE),  # another driver finished it first
            gated=False,
        )

    async def claim_transfer(self, transfer_id: str, actor: str) -> StoredTransfer | None:
        """The courier's claim of a pending record whose lease has passed (None: not due, or
        no longer pending)."""
        reply = await self._on_transfer(
            self.scripts.transfer_claim, transfer_id, actor, [transfer_id, self.transfer_lease_ms]
        )
        return decode_transfer(reply.payload) if reply.code == OK else None

    async def due_transfers(self, limit_per_partition: int) -> list[str]:
        """Ids of pending transfer records whose lease has passed, across partitions."""
        now = await self.client.time()
        now_ms = now[0] * 1000 + now[1] // 1000
        async with self.client.pipeline(transaction=False) as pipe:
            for p in range(self.partitions):
                pipe.zrangebyscore(
                    keys.transfer_pending(p), "-inf", now_ms, start=0, num=limit_per_partition
                )
            found = await pipe.execute()
        return [tid.decode() for ids in found for tid in ids]

    async def drive_transfer(
        self, record: StoredTransfer, actor: str, idem: Idempotency | None = None
    ) -> StoredTransfer:
        """Settle a pending record, forward only: in transit -> write the ``to`` side, then
        confirm; cancelling -> withdraw the ``to`` side, then put the units back at ``from``
        (``idem`` records that reply), or, when ``to`` refuses (units received), back to
        in_transit. Another driver's move wins; the record as this call left it."""
        if record.status == "in_transit" and record.pending:
            shadow = await self.arrive_transfer(record, actor)
            await self.confirm_transfer(record.id, "in_transit", shadow.status, actor)
        elif record.status == "cancelling":
            withdrawn = await self.withdraw_transfer(record, actor)
            if withdrawn.code == OK:
                done = await self.finish_cancel(record, actor, idem)
                if done.code == OK:
                    return decode_transfer(done.payload)
            else:
                await self.confirm_transfer(
                    record.id, "cancelling", withdrawn.payload.decode(), actor
                )
        return await self.get_transfer(record.id) or record

    async def _on_transfer(
        self, script: Script, transfer_id: str, actor: str, extra: list[Any]
    ) -> Reply:
        p = transfer_partition(transfer_id, self.partitions)
        return await self._run(
            script,
            p,
            self._transfer_keys(p, None, transfer_id),
            [actor, *self._idem_args(None), *extra],
            transfer_id,
            tolerate=(TRANSFER_STATE, NO_TRANSFER, NOT_DUE),
            gated=False,
        )
