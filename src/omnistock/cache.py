"""In-process caches of locations and API keys for the hot path, invalidated across instances.

Postgres holds locations and keys; every instance serves them from memory. A change is published
on a Redis channel and every instance drops what it cached; after any gap in the subscription the
caches are dropped too, since a message may have been missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from collections import defaultdict
from typing import Any

import asyncpg

from omnistock.domain.errors import NotFound
from omnistock.domain.locations import Location
from omnistock.domain.roles import Principal, Role
from omnistock.postgres import catalog
from omnistock.redis import keys

log = logging.getLogger("omnistock.cache")

BOOTSTRAP_ID = "bootstrap"
_NEGATIVE_TTL = 2.0  # seconds an unknown key or location is remembered as unknown
_NEGATIVE_MAX = 10_000


class _Negative:
    """Bounded, short-lived memory of misses, so garbage ids do not each cost a query."""

    def __init__(self) -> None:
        self._until: dict[str, float] = {}

    def __contains__(self, item: str) -> bool:
        until = self._until.get(item)
        return until is not None and until > time.monotonic()

    def add(self, item: str) -> None:
        if len(self._until) >= _NEGATIVE_MAX:
            self._until.clear()
        self._until[item] = time.monotonic() + _NEGATIVE_TTL

    def clear(self) -> None:
        self._until.clear()


class KeyCache:
    """API key secret -> principal. ``OMNISTOCK_ADMIN_KEY`` is an admin key that lives nowhere."""

    def __init__(self, db: asyncpg.Pool, admin_key: str | None) -> None:
        self._db = db
        self._admin_hash = catalog.hash_key(admin_key) if admin_key else None
        self._known: dict[bytes, Principal] = {}
        self._unknown = _Negative()

    async def principal(self, secret: str) -> Principal | None:
        digest = catalog.hash_key(secret)
        found = self._known.get(digest)
        if found is not None:
            return found
        if self._admin_hash is not None and hmac.compare_digest(digest, self._admin_hash):
            return Principal(id=BOOTSTRAP_ID, name="bootstrap-admin", role=Role.ADMIN)
        if digest.hex() in self._unknown:
            return None
        found = await catalog.principal_for(self._db, secret)
        if found is None:
            self._unknown.add(digest.hex())
            return None
        self._known[digest] = found
        return found

    def clear(self) -> None:
        self._known.clear()
        self._unknown.clear()


class LocationCache:
    """Every location in memory, with a group index; misses are checked against Postgres."""

    def __init__(self, db: asyncpg.Pool) -> None:
        self._db = db
        self.by_id: dict[str, Location] = {}
        self.by_group: dict[str, list[Location]] = {}
        self._unknown = _Negative()

    async def reload(self) -> None:
        self._set(await catalog.all_locations(self._db))

    def _set(self, locations: list[Location]) -> None:
        by_group: dict[str, list[Location]] = defaultdict(list)
        for loc in locations:
            for group in loc.groups:
                by_group[group].append(loc)
        self.by_id = {loc.id: loc for loc in locations}
        self.by_group = dict(by_group)
        self._unknown.clear()

    def put(self, loc: Location) -> None:
        """Take a location this instance just stored (its own writes are visible at once)."""
        self._set([*(x for x in self.by_id.values() if x.id != loc.id), loc])

    async def get(self, location_id: str) -> Location | None:
        loc = self.by_id.get(location_id)
        if loc is not None or location_id in self._unknown:
            return loc
        # Maybe created on another instance a moment ago: the record decides.
        await self.reload()
        loc = self.by_id.get(location_id)
        if loc is None:
            self._unknown.add(location_id)
        return loc

    async def require(self, location_id: str) -> Location:
        loc = await self.get(location_id)
        if loc is None:
            raise NotFound(f"location {location_id!r} not found")
        return loc

    def all(self) -> list[Location]:
        return sorted(self.by_id.values(), key=lambda x: x.id)


async def publish(redis: Any, what: str) -> None:
    """Tell every instance that ``what`` (``keys`` or ``locations``) changed."""
    await redis.publish(keys.INVALIDATE_CHANNEL, what)


async def follow_invalidations(redis: Any, key_cache: KeyCache, locations: LocationCache) -> None:
    """Run forever: apply invalidation messages; drop everything after a subscription gap."""
    while True:
        pubsub = redis.pubsub()
        try:
            await pubsub.subscribe(keys.INVALIDATE_CHANNEL)
            key_cache.clear()
            await locations.reload()
            while True:
                msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5.0)
                if msg is None:
                    continue
                if msg["data"] == b"keys":
                    key_cache.clear()
                elif msg["data"] == b"locations":
                    await locations.reload()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("invalidation subscription lost (%s); retrying", exc)
            key_cache.clear()
            await asyncio.sleep(0.5)
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
