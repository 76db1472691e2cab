"""``serve --demo``: a believable retailer in the Chicago metro area.

Northwind Outfitters: two warehouses and 20 stores (with real neighbourhood coordinates), groups
``online`` (what ships to web orders) and ``pickup`` (click-and-collect stores), 300 skus with
stock. Loading is deterministic; locations are upserted, stock is loaded only the first time.
"""

from __future__ import annotations

import random

import asyncpg

from omnistock.domain.commands import Count
from omnistock.domain.locations import Location, default_pickup
from omnistock.domain.roles import Role
from omnistock.postgres import catalog
from omnistock.redis.store import StockStore
from omnistock.usecases.caches import publish

WAREHOUSES = [
    ("wh-joliet", "Joliet Distribution Center", 41.5250, -88.0817),
    ("wh-elkgrove", "Elk Grove Village Fulfillment", 42.0039, -87.9703),
]
STORES = [
    ("chi-loop", "State Street (Loop)", 41.8827, -87.6278),
    ("chi-rivernorth", "River North", 41.8923, -87.6341),
    ("chi-goldcoast", "Gold Coast", 41.9047, -87.6285),
    ("chi-lincolnpark", "Lincoln Park", 41.9214, -87.6513),
    ("chi-wickerpark", "Wicker Park", 41.9088, -87.6776),
    ("chi-logansq", "Logan Square", 41.9231, -87.7093),
    ("chi-lakeview", "Lakeview", 41.9434, -87.6553),
    ("chi-andersonville", "Andersonville", 41.9800, -87.6685),
    ("chi-hydepark", "Hyde Park", 41.7943, -87.5907),
    ("chi-pilsen", "Pilsen", 41.8525, -87.6614),
    ("chi-southloop", "South Loop", 41.8580, -87.6246),
    ("chi-westloop", "West Loop", 41.8830, -87.6470),
    ("evanston", "Evanston", 42.0451, -87.6877),
    ("oakpark", "Oak Park", 41.8850, -87.7845),
    ("skokie", "Skokie (Old Orchard)", 42.0629, -87.7511),
    ("schaumburg", "Schaumburg (Woodfield)", 42.0447, -88.0371),
    ("naperville", "Naperville", 41.7508, -88.1535),
    ("oakbrook", "Oak Brook", 41.8500, -87.9537),
    ("orlandpark", "Orland Park", 41.6303, -87.8539),
    ("highlandpark", "Highland Park", 42.1817, -87.8003),
]
FAMILIES = [
    ("TEE", "S M L XL"), ("HOODIE", "S M L XL"), ("JEANS", "28 30 32 34 36"),
    ("JACKET", "S M L"), ("SNEAKER", "8 9 10 11 12"), ("BOOT", "8 9 10 11"),
    ("SOCKS", "S M L"), ("CAP", "OS"), ("BACKPACK", "OS"), ("BOTTLE", "OS"),
]  # fmt: skip
COLORS = ["BLK", "WHT", "NVY", "GRN", "RED", "GRY", "TAN", "BLU"]
DEMO_KEY_NAME = "demo-admin"


def demo_locations() -> list[Location]:
    """The demo warehouses and stores."""
    out = [
        Location(id=i, name=n, kind="warehouse", lat=la, lon=lo, pickup=False, ship_from=True,
                 groups=["online"], safety_stock=5, limited_threshold=10, timezone="America/Chicago")
        for i, n, la, lo in WAREHOUSES
    ]  # fmt: skip
    for n, (loc_id, name, lat, lon) in enumerate(STORES):
        ships = n % 4 == 0  # a quarter of the stores also ship web orders
        out.append(
            Location(
                id=loc_id, name=f"Northwind {name}", kind="store", lat=lat, lon=lon,
                pickup=default_pickup("store"), ship_from=ships,
                groups=["pickup", *(["online"] if ships else [])], safety_stock=1,
                limited_threshold=2, timezone="America/Chicago",
            )
        )  # fmt: skip
    return out


def demo_skus() -> list[str]:
    """300 skus like ``HOODIE-NVY-M``, in a fixed order."""
    skus: list[str] = []
    for family, sizes in FAMILIES:
        for color in COLORS:
            skus += [f"{family}-{color}-{size}" for size in sizes.split()]
    return skus[:300]


def demo_counts(locations: list[Location], skus: list[str]) -> list[Count]:
    """Believable quantities: deep at warehouses, thin and patchy at stores."""
    rng = random.Random(20261123)
    counts: list[Count] = []
    for loc in locations:
        for sku in skus:
            if loc.kind == "warehouse":
                qty = rng.choice([0, 40, 80, 120, 200, 350]) if rng.random() > 0.05 else 0
            elif rng.random() < 0.6:
                qty = rng.choice([0, 1, 2, 3, 4, 6, 8, 12])
            else:
                continue
            counts.append(Count(location=loc.id, sku=sku, on_hand=qty, reason="count", ref="demo"))
    return counts


async def load_demo(db: asyncpg.Pool, store: StockStore) -> tuple[str, int]:
    """Upsert the demo locations, load stock if it was never loaded, and make an admin key.
    Returns the new key's secret and the number of positions loaded now."""
    locations = demo_locations()
    first_time = False
    for loc in locations:
        _, created = await catalog.upsert_location(db, loc)
        first_time = first_time or created
    await store.put_location_meta(locations)
    loaded = 0
    if first_time:
        counts = demo_counts(locations, demo_skus())
        for start in range(0, len(counts), 500):
            batch = counts[start : start + 500]
            await store.set_counts(batch, "demo", None, kind="import")
            loaded += len(batch)
    key = await catalog.create_key(db, DEMO_KEY_NAME, Role.ADMIN, [])
    assert key.key is not None
    # Servers already running serve locations and keys from memory: tell them.
    await publish(store.client, "locations")
    await publish(store.client, "keys")
    return key.key, loaded
