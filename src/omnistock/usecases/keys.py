"""API keys: create, list, delete (Postgres is the record; every instance's key cache is told,
and waited for, before the answer)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from omnistock.domain.errors import ValidationFailed
from omnistock.domain.roles import ApiKey, Role
from omnistock.postgres import catalog
from omnistock.usecases.caches import KeyCache, LocationCache, publish


class Keys:
    """The API-keys capability of one process."""

    def __init__(
        self, db: asyncpg.Pool, redis: Any, locations: LocationCache, cache: KeyCache
    ) -> None:
        self._db = db
        self._redis = redis
        self._locations = locations
        self._cache = cache

    async def create(self, name: str, role: Role, locations: Sequence[str]) -> ApiKey:
        """A new key (its secret is in the result only); every location must exist."""
        for i, loc_id in enumerate(locations):
            if await self._locations.get(loc_id) is None:
                raise ValidationFailed(f"locations[{i}]", f"unknown location {loc_id!r}")
        made = await catalog.create_key(self._db, name, role, list(dict.fromkeys(locations)))
        # Instances answer unknown keys from memory: tell them all (and wait) before answering.
        self._cache.clear()
        await publish(self._redis, "keys")
        return made

    async def listed(self) -> list[ApiKey]:
        """Every key not deleted (without secrets)."""
        return await catalog.list_keys(self._db)

    async def delete(self, key_id: str) -> bool:
        """Delete the key everywhere; False when there was none."""
        if not await catalog.revoke_key(self._db, key_id):
            return False
        self._cache.clear()
        await publish(self._redis, "keys", subject=key_id)
        return True
