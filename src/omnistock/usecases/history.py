"""A position's audit ledger, from Postgres, newest first, in pages."""

from __future__ import annotations

from typing import Any

import asyncpg

from omnistock.domain.errors import ValidationFailed
from omnistock.postgres import ledger, partitions
from omnistock.usecases.caches import LocationCache


class History:
    """The history capability of one process."""

    def __init__(self, db: asyncpg.Pool, locations: LocationCache) -> None:
        self._db = db
        self._locations = locations

    async def page(
        self, location_id: str, sku: str, before: str | None, limit: int
    ) -> tuple[list[Any], bool, int | None]:
        """Up to ``limit`` ledger rows below the event ``before`` (None: from the newest),
        whether more follow, and the epoch ms before which retention may have deleted rows (None:
        never pruned). NotFound for an unknown location; ValidationFailed for a ``before`` that is
        not an event of this position."""
        await self._locations.require(location_id)
        below: int | None = None
        if before is not None:
            below = await ledger.event_version(self._db, before, location_id, sku)
            if below is None:
                raise ValidationFailed("before", f"no event {before!r} in this position's history")
        rows = await ledger.history(self._db, location_id, sku, below, limit + 1)
        # Read after the page: a deletion records its cutoff in its own transaction, so any row
        # the page is missing was deleted under a cutoff this read sees.
        since = await partitions.retained_since(self._db)
        return rows[:limit], len(rows) > limit, since
