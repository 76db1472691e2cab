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

from omnistock.domain.errors import NotFound, Unavailable
from omnistock.domain.locations import Location
from omnistock.domain.roles import Principal, Role
from omnistock.postgres import catalog
from omnistock.redis import keys
from omnistock.tasks import reraise_if_cancelled

log = logging.getLogger("omnistock.cache")
# What a look-up that reaches Postgres may raise (a caller answers "retry" rather than fail).
LOOKUP_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)

BOOTSTRAP_ID = "bootstrap"
_RETRY_SECONDS = 1.0  # after a failed read of the keys, requests fail fast for this long
_LOAD_ATTEMPTS = 3  # reads in a row while invalidations keep arriving, before answering anyway


class KeyCache:
    """API key hash -> principal, for every live key at once. ``OMNISTOCK_ADMIN_KEY`` is an admin
    key that lives nowhere.

    An unknown key is answered from memory: keys are random, so a miss stays a miss until a key
    is created or deleted, and both publish an invalidation. The first lookup after one reads the
    table again (once, however many requests wait for it), so any number of requests with
    unknown keys costs one query per invalidation, never one per request."""

    def __init__(self, db: asyncpg.Pool, admin_key: str | None) -> None:
        self._db = db
        self._admin_hash = catalog.hash_key(admin_key) if admin_key else None
        self._known: dict[bytes, Principal] = {}
        self._fresh = False
        self._generation = 0  # bumped by clear(): a read that spans a clear is not fresh
        self._loading = asyncio.Lock()
        self._failed_at = -_RETRY_SECONDS

    async def principal(self, secret: str) -> Principal | None:
        """The principal behind ``secret``, or None for an unknown or deleted key."""
        digest = catalog.hash_key(secret)
        if self._admin_hash is not None and hmac.compare_digest(digest, self._admin_hash):
            return Principal(id=BOOTSTRAP_ID, name="bootstrap-admin", role=Role.ADMIN)
        if not self._fresh:
            await self._load()
        return self._known.get(digest)

    async def _load(self) -> None:
        """Read every live key, one reader at a time (the others wait and use what it read)."""
        async with self._loading:
            for _ in range(_LOAD_ATTEMPTS):
                if self._fresh:
                    return
                if time.monotonic() - self._failed_at < _RETRY_SECONDS:
                    raise Unavailable("API keys cannot be read from Postgres right now; retry")
                generation = self._generation
                try:
                    known = await catalog.live_keys(self._db)
                except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                    self._failed_at = time.monotonic()
                    raise
                self._known = known
                self._fresh = generation == self._generation

    def clear(self) -> None:
        """Keys changed (or an invalidation may have been missed): read them again before the
        next answer."""
        self._generation += 1
        self._fresh = False


class LocationCache:
    """Every location in memory, with a group index. Kept current by the invalidation channel (a
    location stored on any instance is published, and the writer waits until every instance has
    read it), so an unknown location is answered from memory: garbage ids cost no query."""

    def __init__(self, db: asyncpg.Pool) -> None:
        self._db = db
        self.by_id: dict[str, Location] = {}
        self.by_group: dict[str, list[Location]] = {}
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

    def put(self, loc: Location) -> None:
        """Take a location this instance just stored (its own writes are visible at once)."""
        self._set([*(x for x in self.by_id.values() if x.id != loc.id), loc])

    async def get(self, location_id: str) -> Location | None:
        """The location, or None: from memory only (see the class)."""
        return self.by_id.get(location_id)

    async def require(self, location_id: str) -> Location:
        loc = self.by_id.get(location_id)
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
