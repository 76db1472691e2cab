"""Fixtures for the scripts: a StockStore on the real Valkey and helpers to inspect state."""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as aredis

from omnistock.domain.locations import Location
from omnistock.domain.reservations import StoredReservation
from omnistock.redis import keys
from omnistock.redis.multiplex import Multiplexer
from omnistock.redis.scripts import Scripts
from omnistock.redis.store import StockStore
from omnistock.redis.streams import ensure_streams
from tests.events import event_fields

PARTITIONS = 64


@pytest.fixture(scope="session")
def scripts() -> Scripts:
    return Scripts.load()


@pytest.fixture(scope="session")
async def ready_redis(redis: aredis.Redis) -> aredis.Redis:
    """The session's Valkey (database 0, no Postgres behind it) with its streams created, as a
    fresh install has them."""
    await ensure_streams(redis, PARTITIONS)
    return redis


@pytest.fixture
def store(ready_redis: aredis.Redis, hot: Multiplexer, scripts: Scripts) -> StockStore:
    return StockStore(
        ready_redis,
        hot,
        scripts,
        partitions=PARTITIONS,
        idempotency_ttl_seconds=3600,
        retention_seconds=3600,
    )


class Probe:
    """Reads raw state and events, to assert exactly what a script left behind."""

    def __init__(self, redis: aredis.Redis, store: StockStore) -> None:
        self.redis = redis
        self.store = store
        self.marks: dict[int, bytes] = {}

    async def location(self, loc_id: str, safety_stock: int = 0, limited: int = 2) -> Location:
        loc = Location(
            id=loc_id,
            name=loc_id,
            kind="store",
            safety_stock=safety_stock,
            limited_threshold=limited,
        )
        await self.store.put_location_meta([loc])
        await self.mark(loc_id)
        return loc

    async def mark(self, loc_id: str) -> None:
        """Remember the stream's end, so ``events`` returns only what comes after."""
        p = self.store.partition(loc_id)
        last = await self.redis.xrevrange(keys.stream(p), count=1)
        self.marks[p] = last[0][0] if last else b"0-0"

    async def events(self, loc_id: str) -> list[dict[str, str]]:
        """Events of ``loc_id``'s partition since the mark, for that location only."""
        p = self.store.partition(loc_id)
        start = self.marks.get(p, b"0-0")
        entries = await self.redis.xrange(keys.stream(p), min=b"(" + start)
        out = []
        for _id, fields in entries:
            ev = event_fields(fields)
            if ev.get("loc") == loc_id:  # (t=i idempotency events carry no location)
                out.append(ev)
        return out

    async def position(self, loc_id: str, sku: str) -> dict[str, str]:
        raw = await self.redis.hgetall(keys.position(self.store.partition(loc_id), loc_id, sku))
        return {k.decode(): v.decode() for k, v in raw.items()}

    async def raw(self, key: str) -> Any:
        return await self.redis.hgetall(key)


@pytest.fixture
def probe(redis: aredis.Redis, store: StockStore) -> Probe:
    return Probe(redis, store)


async def doc_of(store: StockStore, reservation_id: str) -> StoredReservation:
    doc = await store.get_reservation(reservation_id)
    assert doc is not None, reservation_id
    return doc
