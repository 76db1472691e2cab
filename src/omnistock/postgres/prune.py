"""Pruning: what Postgres no longer needs to keep, deleted in small batches by a background loop.

- ledger rows older than ``ledger_retention_days`` (the history endpoint reaches back that far):
  whole months are dropped (postgres/partitions.py, which also creates the months ahead), the
  rows of the month that straddles the cutoff are deleted in batches;
- finished reservations (committed, released, expired) whose end is older than
  ``reservation_retention_days`` (reads of them answer 404 afterwards); never an active one;
- finished sourcing hold records (failed, released; held ones once their parts have surely
  ended) older than ``reservation_retention_days`` too (GET of them answers 404 afterwards);
  never a pending or compensating one;
- idempotency records past their expiry;
- finished supply (received, cancelled) whose end is older than ``supply_retention_days``;
- finished transfers (received, cancelled) whose end is older than ``transfer_retention_days``.

Nothing that rebuild or reconcile reads is touched: they read positions, active reservations,
unfinished sourcing holds, live idempotency records and stream offsets, never the ledger. Rows a
stream still holds (within ``stream_retention_seconds``) are never pruned, so a replayed entry
cannot bring one back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import asyncpg
import msgspec

from omnistock.domain.reservations import MAX_LIFETIME_SECONDS
from omnistock.metrics import Metrics
from omnistock.postgres import partitions
from omnistock.postgres.sql import load_queries
from omnistock.settings import Settings
from omnistock.tasks import reraise_if_cancelled

log = logging.getLogger("omnistock.prune")
Q = load_queries("prune.sql")
DAY = 86400
_MARGIN = 3600  # past the stream retention: entries still in a stream are never pruned


class Retention(msgspec.Struct, frozen=True, kw_only=True):
    """Ages (seconds) past which rows are deleted; 0 keeps them for ever."""

    ledger_seconds: int
    reservations_seconds: int
    batch: int = 1000
    supply_seconds: int = 0
    transfers_seconds: int = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> Retention:
        """The configured retention, raised where it is shorter than what must stay (rows of
        events still in a stream; finished reservations Redis still answers for)."""
        floor = settings.stream_retention_seconds + _MARGIN
        ledger = settings.ledger_retention_days * DAY
        reservations = settings.reservation_retention_days * DAY
        return cls(
            ledger_seconds=max(ledger, floor) if ledger else 0,
            reservations_seconds=(
                max(reservations, floor, settings.finished_reservation_retention_seconds + _MARGIN)
                if reservations
                else 0
            ),
            batch=settings.prune_batch,
            supply_seconds=_supply_seconds(settings, floor),
            transfers_seconds=_transfers_seconds(settings, floor),
        )


def _supply_seconds(settings: Settings, floor: int) -> int:
    """Finished supply's retention in Postgres, never shorter than Redis keeps it."""
    days = settings.supply_retention_days * DAY
    if not days:
        return 0
    return max(days, floor, settings.finished_supply_retention_seconds + _MARGIN)


def _transfers_seconds(settings: Settings, floor: int) -> int:
    """Finished transfers' retention in Postgres, never shorter than Redis keeps them."""
    days = settings.transfer_retention_days * DAY
    if not days:
        return 0
    return max(days, floor, settings.finished_transfer_retention_seconds + _MARGIN)


def _count(status: str) -> int:
    return int(status.rsplit(" ", 1)[1])  # "DELETE <n>"


async def _prune(db: asyncpg.Pool, query: str, args: tuple[int, ...], batch: int) -> int:
    """Run ``query`` (one batch per call) until a batch deletes fewer than ``batch`` rows."""

    async def once() -> int:
        return _count(await db.execute(query, *args))

    return await _batches(once, batch)


async def _batches(once: Callable[[], Awaitable[int]], batch: int) -> int:
    """Call ``once`` (one batch, the rows it deleted) until a batch comes back short."""
    total = 0
    while True:
        n = await once()
        total += n
        if n < batch:
            return total
        await asyncio.sleep(0.01)  # let the persister's transactions in between


async def prune_once(
    db: asyncpg.Pool, retention: Retention, metrics: Metrics | None = None
) -> dict[str, int]:
    """Delete everything past retention now; the rows deleted, per table."""
    done: dict[str, int] = {}
    if retention.ledger_seconds:
        done["ledger"] = await _batches(
            lambda: partitions.prune_rows(db, retention.ledger_seconds, retention.batch),
            retention.batch,
        )
    if retention.reservations_seconds:
        done["reservations"] = await _prune(
            db,
            Q["prune_reservations"],
            (retention.reservations_seconds, retention.batch),
            retention.batch,
        )
        done["sourcing_holds"] = await _prune(
            db,
            Q["prune_sourcing_holds"],
            (retention.reservations_seconds, retention.batch, MAX_LIFETIME_SECONDS),
            retention.batch,
        )
    if retention.supply_seconds:
        done["supply"] = await _prune(
            db, Q["prune_supply"], (retention.supply_seconds, retention.batch), retention.batch
        )
    if retention.transfers_seconds:
        done["transfers"] = await _prune(
            db,
            Q["prune_transfers"],
            (retention.transfers_seconds, retention.batch),
            retention.batch,
        )
    done["idempotency"] = await _prune(
        db, Q["prune_idempotency"], (retention.batch,), retention.batch
    )
    if metrics is not None:
        for table, n in done.items():
            if n:
                metrics.pruned.inc(n, table=table)
    return done


async def run_pruner(db: asyncpg.Pool, settings: Settings, metrics: Metrics) -> None:
    """Every ``prune_interval_seconds``: keep the ledger's month partitions (create ahead, drop
    past retention), then prune; Postgres outages are waited out."""
    retention = Retention.from_settings(settings)
    while True:
        try:
            await maintain_partitions(db, settings, retention)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            reraise_if_cancelled()
            log.warning("pruner: ledger partitions: %s", exc)
        try:
            done = await prune_once(db, retention, metrics)
            if any(done.values()):
                log.info("pruned %s", done)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            reraise_if_cancelled()
            log.warning("pruner: %s", exc)
        await asyncio.sleep(settings.prune_interval_seconds)


async def maintain_partitions(
    db: asyncpg.Pool, settings: Settings, retention: Retention
) -> partitions.Maintenance:
    """One round of the ledger's partition upkeep with the configured bounds."""
    done = await partitions.maintain(
        db,
        retention_seconds=retention.ledger_seconds,
        ahead=settings.ledger_partitions_ahead,
        lock_timeout_ms=settings.ledger_partition_lock_timeout_ms,
    )
    if done.created or done.dropped:
        log.info(
            "ledger partitions: created %s, dropped %s",
            [m.strftime("%Y-%m") for m in done.created],
            [m.strftime("%Y-%m") for m in done.dropped],
        )
    return done
