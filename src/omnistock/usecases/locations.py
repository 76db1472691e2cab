"""Locations: create or replace one (Postgres is the record; Redis keeps the meta the scripts read;
every instance's cache is told), read them from the cache."""

from __future__ import annotations

from typing import Any

import asyncpg

from omnistock.domain.locations import Location
from omnistock.postgres import catalog
from omnistock.redis.store import StockStore
from omnistock.usecases.caches import LocationCache, publish


class Locations:
    """The locations capability of one process."""

    def __init__(
        self, db: asyncpg.Pool, redis: Any, store: StockStore, cache: LocationCache
    ) -> None:
        self._db = db
        self._redis = redis
        self._store = store
        self._cache = cache

    async def put(self, wanted: Location) -> tuple[Location, bool]:
        """Create or replace ``wanted``; the stored location and whether it was created."""
        stored, created = await catalog.upsert_location(self._db, wanted)
        await self._store.put_location_meta([stored])
        self._cache.put(stored)
        await publish(self._redis, "locations")
        return stored, created

    async def require(self, location_id: str) -> Location:
        """The location, or NotFound."""
        return await self._cache.require(location_id)

    async def get(self, location_id: str) -> Location | None:
        """The location, or None when unknown."""
        return await self._cache.get(location_id)

    def listed(self, group: str | None) -> list[Location]:
        """Every location, or those of ``group``, by id."""
        if group is None:
            return self._cache.all()
        return sorted(self._cache.by_group.get(group, []), key=lambda x: x.id)
