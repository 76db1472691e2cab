"""Typed operations on the live state: reads, and every mutation through its Lua script. One
class, ``StockStore``, assembled from its parts: ``runner.py`` (connections, the script runner,
partitions), ``positions.py`` (reads, location meta), ``stock_writes.py`` (adjust, set),
``reservations.py`` (reserve ... expire), ``sourcing_holds.py`` (cross-partition sourcing holds)
and ``idempotency.py`` (the key claim)."""

from __future__ import annotations

from omnistock.redis.positions import PositionReads, PositionRow, position_from_fields
from omnistock.redis.reservations import ReservationOps
from omnistock.redis.sourcing_holds import SourcingHoldOps
from omnistock.redis.stock_writes import StockWrites
from omnistock.redis.supply import SupplyOps
from omnistock.redis.transfers import TransferOps

__all__ = ["PositionRow", "StockStore", "position_from_fields"]


class StockStore(
    PositionReads, StockWrites, ReservationOps, SourcingHoldOps, SupplyOps, TransferOps
):
    """The live stock and reservations in Redis, for one process. Request-path commands (reads,
    scripts, idempotency claims) go through ``hot``, the process's pipelined connection; bulk and
    background commands through ``client``, redis-py's pool."""
