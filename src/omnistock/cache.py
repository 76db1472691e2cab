"""In-process caches of locations and API keys for the hot path, invalidated across instances.

Postgres holds locations and keys; every instance serves them from memory. A change is published
on a Redis channel and every instance drops what it cached, then acknowledges; the writer waits for
every acknowledgement, so when a key deletion answers, no instance accepts that key any more. After
any gap in the subscription the caches are dropped too, since a message may have been missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import secrets
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import asyncpg

from omnistock.domain.errors import NotFound
from omnistock.domain.locations import Location
from omnistock.domain.roles import Principal, Role
from omnistock.postgres import catalog
from omnistock.redis import keys
from omnistock.tasks import reraise_if_cancelled

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
        self._generation = 0  # bumped by clear(): a lookup that spans a clear is not cached

    async def principal(self, secret: str) -> Principal | None:
        digest = catalog.hash_key(secret)
        found = self._known.get(digest)
        if found is not None:
            return found
        if self._admin_hash is not None and hmac.compare_digest(digest, self._admin_hash):
            return Principal(id=BOOTSTRAP_ID, name="bootstrap-admin", role=Role.ADMIN)
        if digest.hex() in self._unknown:
            return None
        generation = self._generation
        found = await catalog.principal_for(self._db, secret)
        if generation != self._generation:
            return found  # keys changed meanwhile: answer this request, remember nothing
        if found is None:
            self._unknown.add(digest.hex())
            return None
        self._known[digest] = found
        return found

    def clear(self) -> None:
        self._generation += 1
        self._known.clear()
        self._unknown.clear()


class LocationCache:
    """Every location in memory, with a group index; misses are checked against Postgres."""

    def __init__(self, db: asyncpg.Pool) -> None:
        self._db = db
        self.by_id: dict[str, Location] = {}
        self.by_group: dict[str, list[Location]] = {}
        self._unknown = _Negative()
        self._reloading = asyncio.Lock()

    async def reload(self) -> None:
        """Read every location again. One at a time: a slow reload must not finish after (and
        overwrite) one that started later and saw newer rows."""
        async with self._reloading:
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


async def publish(redis: Any, what: str, ack_within: float = 2.0, subject: str = "") -> None:
    """Tell every instance that ``what`` (``keys`` or ``locations``) changed, and wait (at most
    ``ack_within`` seconds) until each one that heard it has applied it. ``subject`` names the
    one thing that changed, when known (a deleted key's id: its open streams are closed)."""
    nonce = secrets.token_hex(8)
    message = f"{what} {nonce} {subject}" if subject else f"{what} {nonce}"
    listeners = int(await redis.publish(keys.INVALIDATE_CHANNEL, message))
    ack = keys.invalidation_ack(nonce)
    deadline = time.monotonic() + ack_within
    try:
        for _ in range(listeners):
            left = deadline - time.monotonic()
            if left <= 0 or await redis.blpop([ack], timeout=left) is None:
                log.warning("invalidation %s: not every instance acknowledged in time", what)
                return
    finally:
        await redis.delete(ack)


KeysChanged = Callable[[str | None], None]
"""Told a deleted key's id, or None when any key may have changed (a gap in the channel)."""


async def _apply(
    redis: Any,
    message: bytes,
    key_cache: KeyCache,
    locations: LocationCache,
    on_keys: KeysChanged | None = None,
) -> None:
    what, _, rest = message.decode().partition(" ")
    nonce, _, subject = rest.partition(" ")
    if what == "keys":
        key_cache.clear()
        if on_keys is not None:
            on_keys(subject or None)
    elif what == "locations":
        await locations.reload()
    if nonce:
        ack = keys.invalidation_ack(nonce)
        async with redis.pipeline(transaction=False) as pipe:
            pipe.rpush(ack, 1)
            pipe.expire(ack, 60)
            await pipe.execute()


async def follow_invalidations(
    redis: Any,
    key_cache: KeyCache,
    locations: LocationCache,
    on_keys: KeysChanged | None = None,
) -> None:
    """Run forever: apply invalidation messages; drop everything after a subscription gap
    (``on_keys(None)``: a key deleted meanwhile is not named, every holder must re-check)."""
    while True:
        pubsub = redis.pubsub()
        try:
            await pubsub.subscribe(keys.INVALIDATE_CHANNEL)
            key_cache.clear()
            if on_keys is not None:
                on_keys(None)
            await locations.reload()
            while True:
                msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5.0)
                if msg is not None:
                    await _apply(redis, msg["data"], key_cache, locations, on_keys)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            reraise_if_cancelled()
            log.warning("invalidation subscription lost (%s); retrying", exc)
            key_cache.clear()
            await asyncio.sleep(0.5)
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
