"""Locations (stores, warehouses, ...) and the geometry used to order them by distance."""

from __future__ import annotations

import math
from typing import Literal

import msgspec

LocationKind = Literal["store", "warehouse", "franchise", "dark_store", "kiosk"]
_EARTH_RADIUS_KM = 6371.0088
DEFAULT_PRIORITY = 100
MAX_PRIORITY = 1000


class Location(msgspec.Struct, kw_only=True):
    """A place that holds stock. ``groups`` name the sets it belongs to (``online``, ``pickup``...)."""

    id: str
    name: str
    kind: LocationKind
    lat: float | None = None
    lon: float | None = None
    pickup: bool = False
    ship_from: bool = False
    groups: list[str] = msgspec.field(default_factory=list)
    safety_stock: int = 0
    limited_threshold: int = 2
    timezone: str | None = None
    # Lower is preferred when sourcing (API.md "Locations (additions)").
    priority: int = DEFAULT_PRIORITY
    # {channel: units} the channel may not take at this location, on top of safety_stock.
    channel_safety_stock: dict[str, int] = msgspec.field(default_factory=dict)
    created_at: str | None = None
    updated_at: str | None = None


def channel_fence(location: Location, channel: str | None) -> int:
    """Units of every sku at ``location`` that ``channel`` may not take (0 without a channel)."""
    if channel is None:
        return 0
    return location.channel_safety_stock.get(channel, 0)


def default_pickup(kind: LocationKind) -> bool:
    """Stores (and franchise stores and kiosks) offer pickup unless told otherwise."""
    return kind in ("store", "franchise", "kiosk")


def default_ship_from(kind: LocationKind) -> bool:
    """Warehouses and dark stores ship unless told otherwise."""
    return kind in ("warehouse", "dark_store")


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle (haversine) distance in kilometres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * _EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def nearest(
    locations: list[Location], lat: float, lon: float, radius_km: float | None
) -> list[tuple[Location, float]]:
    """Locations with coordinates within ``radius_km`` (all if None), nearest first."""
    found: list[tuple[Location, float]] = []
    for loc in locations:
        if loc.lat is None or loc.lon is None:
            continue
        d = distance_km(lat, lon, loc.lat, loc.lon)
        if radius_km is None or d <= radius_km:
            found.append((loc, d))
    found.sort(key=lambda pair: (pair[1], pair[0].id))
    return found
