"""Locations and API keys in Postgres (the record; the app serves them from caches)."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from typing import Any

import asyncpg
import msgspec

from omnistock.domain.clock import datetime_ms, rfc3339
from omnistock.domain.locations import Location
from omnistock.domain.roles import ApiKey, Principal, Role
from omnistock.postgres.sql import load_queries

Q = load_queries("catalog.sql")
# channel_safety_stock is a jsonb column read as text ({channel: units}).
_decode_fences = msgspec.json.Decoder(dict[str, int]).decode
_fences_encoder = msgspec.json.Encoder()


def _encode_fences(fences: dict[str, int]) -> str:
    return _fences_encoder.encode(fences).decode()


def hash_key(secret: str) -> bytes:
    """Keys are random 256-bit secrets, so a plain SHA-256 is enough to store them safely."""
    return hashlib.sha256(secret.encode()).digest()


def _ms(ts: Any) -> str:
    return rfc3339(datetime_ms(ts))


def _location(row: asyncpg.Record) -> Location:
    return Location(
        id=row["id"],
        name=row["name"],
        kind=row["kind"],
        lat=row["lat"],
        lon=row["lon"],
        pickup=row["pickup"],
        ship_from=row["ship_from"],
        groups=list(row["groups"]),
        safety_stock=row["safety_stock"],
        limited_threshold=row["limited_threshold"],
        timezone=row["timezone"],
        priority=row["priority"],
        channel_safety_stock=_decode_fences(row["channel_safety_stock"]),
        created_at=_ms(row["created_at"]),
        updated_at=_ms(row["updated_at"]),
    )


async def all_locations(db: asyncpg.Pool | asyncpg.Connection) -> list[Location]:
    return [_location(r) for r in await db.fetch(Q["all_locations"])]


async def upsert_location(
    db: asyncpg.Pool | asyncpg.Connection, loc: Location
) -> tuple[Location, bool]:
    """Create or replace; returns the stored location and True when it was created."""
    row = await db.fetchrow(
        Q["upsert_location"],
        loc.id,
        loc.name,
        loc.kind,
        loc.lat,
        loc.lon,
        loc.pickup,
        loc.ship_from,
        loc.groups,
        loc.safety_stock,
        loc.limited_threshold,
        loc.timezone,
        loc.priority,
        _encode_fences(loc.channel_safety_stock),
    )
    assert row is not None
    return _location(row), bool(row["created"])


def _api_key(row: asyncpg.Record, secret: str | None = None) -> ApiKey:
    return ApiKey(
        id=row["id"],
        name=row["name"],
        role=Role(row["role"]),
        locations=list(row["locations"]),
        created_at=_ms(row["created_at"]),
        key=secret,
    )


async def create_key(
    db: asyncpg.Pool | asyncpg.Connection, name: str, role: Role, locations: Sequence[str]
) -> ApiKey:
    """A new key; the returned ``key`` is the only time the secret is known."""
    secret = "osk_" + secrets.token_urlsafe(32)
    key_id = "key-" + secrets.token_hex(6)
    row = await db.fetchrow(
        Q["insert_key"], key_id, name, role.value, list(locations), hash_key(secret)
    )
    assert row is not None
    return _api_key(row, secret)


async def list_keys(db: asyncpg.Pool | asyncpg.Connection) -> list[ApiKey]:
    return [_api_key(r) for r in await db.fetch(Q["active_keys"])]


async def revoke_key(db: asyncpg.Pool | asyncpg.Connection, key_id: str) -> bool:
    return await db.fetchval(Q["revoke_key"], key_id) is not None


async def live_keys(db: asyncpg.Pool | asyncpg.Connection) -> dict[bytes, Principal]:
    """Every key not deleted, by the hash of its secret."""
    return {
        bytes(row["key_hash"]): Principal(
            id=row["id"],
            name=row["name"],
            role=Role(row["role"]),
            locations=frozenset(row["locations"]),
        )
        for row in await db.fetch(Q["live_key_hashes"])
    }
