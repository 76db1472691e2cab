"""Locations: kind defaults, great-circle distances and ``nearest`` (order, ties, radius)."""

from __future__ import annotations

import math

import pytest

from omnistock.domain.locations import (
    Location,
    LocationKind,
    default_pickup,
    default_ship_from,
    distance_km,
    nearest,
)

CITIES = {
    "london": (51.5074, -0.1278),
    "paris": (48.8566, 2.3522),
    "new-york": (40.7128, -74.0060),
    "los-angeles": (34.0522, -118.2437),
    "sydney": (-33.8688, 151.2093),
    "melbourne": (-37.8136, 144.9631),
    "berlin": (52.5200, 13.4050),
    "munich": (48.1351, 11.5820),
    "madrid": (40.4168, -3.7038),
    "barcelona": (41.3874, 2.1686),
}
EARTH_RADIUS_KM = 6371.0088  # IUGG mean radius
ONE_DEGREE_KM = math.pi * EARTH_RADIUS_KM / 180  # 111.195 km along a great circle


@pytest.mark.parametrize(
    ("kind", "pickup", "ship_from"),
    [
        pytest.param("store", True, False, id="store"),
        pytest.param("warehouse", False, True, id="warehouse"),
        pytest.param("franchise", True, False, id="franchise"),
        pytest.param("dark_store", False, True, id="dark_store"),
        pytest.param("kiosk", True, False, id="kiosk"),
    ],
)
def test_kind_defaults(kind: LocationKind, pickup: bool, ship_from: bool) -> None:
    assert default_pickup(kind) is pickup
    assert default_ship_from(kind) is ship_from


@pytest.mark.parametrize(
    ("a", "b", "km"),
    [
        pytest.param("london", "paris", 344, id="london-paris"),
        pytest.param("new-york", "los-angeles", 3936, id="new-york-los-angeles"),
        pytest.param("sydney", "melbourne", 713, id="sydney-melbourne"),
        pytest.param("berlin", "munich", 504, id="berlin-munich"),
        pytest.param("madrid", "barcelona", 505, id="madrid-barcelona"),
        pytest.param("london", "new-york", 5570, id="london-new-york"),
    ],
)
def test_distance_between_cities(a: str, b: str, km: int) -> None:
    # Published great-circle distances; the sphere differs from the ellipsoid by well under 0.5%.
    assert distance_km(*CITIES[a], *CITIES[b]) == pytest.approx(km, rel=0.005)
    assert distance_km(*CITIES[b], *CITIES[a]) == pytest.approx(distance_km(*CITIES[a], *CITIES[b]))


@pytest.mark.parametrize(
    ("points", "km"),
    [
        pytest.param((48.8566, 2.3522, 48.8566, 2.3522), 0.0, id="same-point"),
        pytest.param((0.0, 0.0, 0.0, 1.0), ONE_DEGREE_KM, id="one-degree-of-equator"),
        pytest.param((0.0, 0.0, 1.0, 0.0), ONE_DEGREE_KM, id="one-degree-of-meridian"),
        pytest.param((0.0, 179.5, 0.0, -179.5), ONE_DEGREE_KM, id="across-antimeridian"),
        pytest.param((0.0, 0.0, 0.0, 90.0), math.pi / 2 * EARTH_RADIUS_KM, id="quarter"),
        pytest.param((0.0, 0.0, 0.0, 180.0), math.pi * EARTH_RADIUS_KM, id="antipodes"),
        pytest.param((90.0, 0.0, -90.0, 0.0), math.pi * EARTH_RADIUS_KM, id="pole-to-pole"),
        pytest.param((90.0, 0.0, 90.0, 123.0), 0.0, id="north-pole-any-longitude"),
        pytest.param((60.0, 0.0, 60.0, 180.0), math.pi / 3 * EARTH_RADIUS_KM, id="over-the-pole"),
    ],
)
def test_distance_geometry(points: tuple[float, float, float, float], km: float) -> None:
    assert distance_km(*points) == pytest.approx(km, abs=1e-6)


def loc(id: str, lat: float | None, lon: float | None) -> Location:
    return Location(id=id, name=id, kind="store", lat=lat, lon=lon)


PLACES = [
    loc("far", 0.0, 3.0),
    loc("tie-b", 0.0, 1.0),
    loc("no-coords", None, None),
    loc("here", 0.0, 0.0),
    loc("tie-a", 0.0, -1.0),
    loc("no-lon", 0.0, None),
    loc("no-lat", None, 0.0),
    loc("mid", 2.0, 0.0),
]


@pytest.mark.parametrize(
    ("radius_km", "expected"),
    [
        pytest.param(
            None, ["here", "tie-a", "tie-b", "mid", "far"], id="no-radius:all-with-coords"
        ),
        pytest.param(0.0, ["here"], id="radius-0:same-point-only"),
        pytest.param(ONE_DEGREE_KM - 0.001, ["here"], id="just-short-of-the-ties"),
        pytest.param(distance_km(0, 0, 0, 1), ["here", "tie-a", "tie-b"], id="radius-inclusive"),
        pytest.param(
            2 * ONE_DEGREE_KM + 0.001, ["here", "tie-a", "tie-b", "mid"], id="two-degrees"
        ),
        pytest.param(20_100.0, ["here", "tie-a", "tie-b", "mid", "far"], id="whole-earth"),
    ],
)
def test_nearest_orders_by_distance_then_id(radius_km: float | None, expected: list[str]) -> None:
    for places in (PLACES, PLACES[::-1]):  # input order does not matter
        found = nearest(places, 0.0, 0.0, radius_km)
        assert [place.id for place, _ in found] == expected
        assert [d for _, d in found] == [
            distance_km(0.0, 0.0, place.lat or 0.0, place.lon or 0.0) for place, _ in found
        ]


def test_nearest_of_nothing_is_nothing() -> None:
    assert nearest([], 0.0, 0.0, None) == []
    assert nearest([loc("no-coords", None, None)], 0.0, 0.0, None) == []


def test_nearest_from_a_real_city() -> None:
    stores = [loc(name, *CITIES[name]) for name in ("munich", "paris", "berlin", "madrid")]
    found = nearest(stores, *CITIES["london"], radius_km=1000)
    # 344, 916 and 930 km; Madrid (1264 km) is out of the radius.
    assert [place.id for place, _ in found] == ["paris", "munich", "berlin"]
    assert found[0][1] == pytest.approx(344, rel=0.005)
