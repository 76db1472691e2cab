"""Sourcing (pure): the pickup and ship rankings, their tie-breaks, split sizes, candidate
selection (flags, groups, radius), `why`, determinism, and a 1,000-candidate ship plan."""

from __future__ import annotations

import random
from itertools import combinations

import msgspec
import pytest

from omnistock.domain.errors import ValidationFailed
from omnistock.domain.locations import Location
from omnistock.domain.sourcing import (
    EXACT_COMBINATIONS,
    Allocation,
    Candidate,
    Fulfillment,
    Option,
    Plan,
    PlanLine,
    plan,
    select_candidates,
)

Lines = list[tuple[str, int]]


def c(location: str, priority: int = 100, km: float | None = None, **available: int) -> Candidate:
    return Candidate(location=location, priority=priority, distance_km=km, available=available)


def shape(result: Plan) -> list[list[tuple[str, list[tuple[str, int]]]]]:
    """Each option as [(location, [(sku, qty)])] in allocation order: what a table can spell."""
    return [
        [(a.location, [(line.sku, line.qty) for line in a.lines]) for a in option.allocations]
        for option in result.options
    ]


# pickup -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("lines", "candidates", "limit", "expected"),
    [
        pytest.param(
            [("a", 1)],
            [c("far", km=5.0, a=3), c("near", km=1.0, a=3)],
            5,
            ["near", "far"],
            id="nearest-first",
        ),
        pytest.param(
            [("a", 1)],
            [c("near", km=0.5, priority=900, a=3), c("far", km=9.0, priority=0, a=3)],
            5,
            ["near", "far"],
            id="distance-beats-priority-with-near",
        ),
        pytest.param(
            [("a", 1)],
            [c("x", 50, 2.0, a=1), c("y", 10, 2.0, a=1)],
            5,
            ["y", "x"],
            id="same-distance-then-priority",
        ),
        pytest.param(
            [("a", 1)],
            [c("b", 10, 2.0, a=1), c("a", 10, 2.0, a=1)],
            5,
            ["a", "b"],
            id="same-distance-and-priority-then-id",
        ),
        pytest.param(
            [("a", 1)],
            [c("low", 20, a=1), c("high", 10, a=1), c("mid", 15, a=1)],
            5,
            ["high", "mid", "low"],
            id="no-near-by-priority",
        ),
        pytest.param(
            [("a", 1)],
            [c("s2", 10, a=1), c("s1", 10, a=1)],
            5,
            ["s1", "s2"],
            id="no-near-priority-tie-then-id",
        ),
        pytest.param(
            [("a", 1), ("b", 1)],
            [c("half", km=0.1, a=5), c("whole", km=8.0, a=1, b=1)],
            5,
            ["whole"],
            id="one-location-must-hold-every-line",
        ),
        pytest.param(
            [("a", 2)],
            [c("fenced", km=0.1, a=1), c("open", km=4.0, a=2)],
            5,
            ["open"],
            id="fence-availability-is-already-net",
        ),
        pytest.param(
            [("a", 1), ("a", 1)],
            [c("one", km=0.1, a=1), c("two", km=4.0, a=2)],
            5,
            ["two"],
            id="duplicate-lines-summed",
        ),
        pytest.param(
            [("a", 1)],
            [c(f"s{i}", km=float(i), a=1) for i in range(6)],
            2,
            ["s0", "s1"],
            id="limit",
        ),
        pytest.param([("a", 1)], [c("x", km=1.0, b=9)], 5, [], id="none-can"),
        pytest.param([("a", 1)], [], 5, [], id="no-candidates"),
        pytest.param([("a", 1)], [c("neg", km=1.0, a=-3)], 5, [], id="negative-is-zero"),
    ],
)
def test_pickup_ranking(
    lines: Lines, candidates: list[Candidate], limit: int, expected: list[str]
) -> None:
    result = plan(lines, "pickup", candidates, limit=limit)
    assert [o.allocations[0].location for o in result.options] == expected
    assert all(o.locations == 1 and len(o.allocations) == 1 for o in result.options)
    summed = dict(lines) if len({s for s, _ in lines}) == len(lines) else {"a": 2}
    for option in result.options:
        assert {(line.sku, line.qty) for line in option.allocations[0].lines} == set(summed.items())
    assert result.considered == len(candidates)


def test_pickup_ignores_max_locations() -> None:
    result = plan([("a", 2)], "pickup", [c("x", km=1.0, a=1), c("y", km=2.0, a=1)])
    assert result.options == []  # a split is never a pickup option


# ship -------------------------------------------------------------------------------------------
A2 = [("a", 2)]
ABCD = [("a", 1), ("b", 1), ("c", 1), ("d", 1)]


@pytest.mark.parametrize(
    ("lines", "candidates", "max_locations", "expected"),
    [
        pytest.param(
            A2,
            [c("st", 100, a=5), c("wh", 10, a=5)],
            3,
            [[("wh", [("a", 2)])], [("st", [("a", 2)])]],
            id="priority-first",
        ),
        pytest.param(
            A2,
            [c("far", 10, 30.0, a=5), c("near", 10, 3.0, a=5)],
            3,
            [[("near", [("a", 2)])], [("far", [("a", 2)])]],
            id="same-priority-then-nearest",
        ),
        pytest.param(
            A2,
            [c("known", 10, 300.0, a=5), c("unknown", 10, None, a=5)],
            3,
            [[("known", [("a", 2)])], [("unknown", [("a", 2)])]],
            id="unknown-distance-counts-as-far",
        ),
        pytest.param(
            A2,
            [c("last", 10, 1.0, a=2), c("plenty", 10, 1.0, a=9)],
            3,
            [[("plenty", [("a", 2)])], [("last", [("a", 2)])]],
            id="avoid-taking-last-units",
        ),
        pytest.param(
            A2,
            [c("leaves1", 10, 1.0, a=3), c("leaves7", 10, 1.0, a=9)],
            3,
            [[("leaves7", [("a", 2)])], [("leaves1", [("a", 2)])]],
            id="largest-remainder-left-behind",
        ),
        pytest.param(
            A2,
            [c("b", 10, 1.0, a=5), c("a", 10, 1.0, a=5)],
            3,
            [[("a", [("a", 2)])], [("b", [("a", 2)])]],
            id="full-tie-then-id",
        ),
        pytest.param(
            [("a", 1), ("b", 1)],
            [c("x", 0, a=1), c("y", 0, b=1), c("all", 1000, a=1, b=1)],
            3,
            [[("all", [("a", 1), ("b", 1)])], [("x", [("a", 1)]), ("y", [("b", 1)])]],
            id="fewest-locations-beats-priority",
        ),
        pytest.param(
            ABCD,
            [c("wh", 10, a=5, b=5, c=5), c("st", 100, 1.2, d=2, a=1), c("x", 500, d=1)],
            3,
            [
                [("wh", [("a", 1), ("b", 1), ("c", 1)]), ("st", [("d", 1)])],
                [("wh", [("a", 1), ("b", 1), ("c", 1)]), ("x", [("d", 1)])],
            ],
            id="split-2-by-priority-sum",
        ),
        pytest.param(
            [("a", 1), ("b", 1)],
            [c("p", 10, 20.0, a=1), c("q", 10, 5.0, b=1), c("r", 10, 8.0, b=1)],
            3,
            [[("q", [("b", 1)]), ("p", [("a", 1)])], [("r", [("b", 1)]), ("p", [("a", 1)])]],
            id="split-2-same-priority-then-distance-sum",
        ),
        pytest.param(
            [("a", 1), ("b", 1)],
            [c("p", 10, 20.0, a=1), c("q", 10, 5.0, b=1), c("r", 10, 25.0, b=1)],
            3,
            [[("q", [("b", 1)]), ("p", [("a", 1)])], [("p", [("a", 1)]), ("r", [("b", 1)])]],
            id="split-2-farthest-parcel-decides",
        ),
        pytest.param(
            [("a", 1), ("b", 1), ("c", 1)],
            [c("x", 10, a=1), c("y", 20, b=1), c("z", 30, c=1)],
            3,
            [[("x", [("a", 1)]), ("y", [("b", 1)]), ("z", [("c", 1)])]],
            id="split-3",
        ),
        pytest.param(
            [("a", 1), ("b", 1), ("c", 1)],
            [c("x", 10, a=1), c("y", 20, b=1), c("z", 30, c=1)],
            2,
            [],
            id="max-locations-bound",
        ),
        pytest.param(
            [("a", 1), ("b", 1)],
            [c("x", 10, a=1), c("y", 20, b=1)],
            1,
            [],
            id="max-locations-1-no-split",
        ),
        pytest.param(
            [("a", 5)],
            [c("small", 100, a=2), c("big", 10, a=3)],
            3,
            [[("big", [("a", 3)]), ("small", [("a", 2)])]],
            id="one-line-split-best-ranked-first",
        ),
        pytest.param(
            [("a", 2), ("b", 2)],
            [c("wh", 10, a=2, b=1), c("st", 100, a=5, b=1)],
            3,
            [[("wh", [("a", 2), ("b", 1)]), ("st", [("b", 1)])]],
            id="whole-line-from-best-holder",
        ),
        pytest.param(
            [("a", 1), ("b", 1)],
            [c("x", 10, a=1, b=1), c("y", 10, a=1)],
            3,
            [[("x", [("a", 1), ("b", 1)])]],
            id="no-superset-of-a-single",
        ),
        pytest.param(
            [("a", 1), ("b", 1), ("c", 1)],
            [c("x", 10, a=1), c("y", 10, b=1, c=1), c("z", 10, c=1)],
            3,
            [[("x", [("a", 1)]), ("y", [("b", 1), ("c", 1)])]],
            id="no-superset-of-a-pair",
        ),
        pytest.param(
            [("a", 1), ("b", 9)],
            [c("x", 10, a=5, b=4), c("y", 10, a=5, b=4)],
            3,
            [],
            id="a-line-no-one-can-fill",
        ),
        pytest.param(
            [("a", 1), ("gone", 1)],
            [c("x", 10, a=5), c("y", 10, a=5)],
            3,
            [],
            id="a-sku-nowhere",
        ),
        pytest.param(
            [("a", 1), ("a", 2)],
            [c("two", 10, a=2), c("three", 100, a=3)],
            3,
            [[("three", [("a", 3)])]],
            id="duplicate-lines-summed",
        ),
        pytest.param(
            A2,
            [c("fenced", 10, a=1), c("open", 100, a=2)],
            1,
            [[("open", [("a", 2)])]],
            id="fence-availability-is-already-net",
        ),
    ],
)
def test_ship_ranking(
    lines: Lines,
    candidates: list[Candidate],
    max_locations: int,
    expected: list[list[tuple[str, list[tuple[str, int]]]]],
) -> None:
    result = plan(lines, "ship", candidates, max_locations=max_locations)
    assert shape(result) == expected
    assert [o.locations for o in result.options] == [len(o) for o in expected]
    assert result.considered == len(candidates)


@pytest.mark.parametrize("max_locations", [4, 10])
def test_ship_split_beyond_triples(max_locations: int) -> None:
    """Sets of 4+ come from the greedy cover (exact search stops at triples)."""
    lines = [(s, 1) for s in "abcd"]
    cands = [c(f"l{s}", 10, **{s: 1}) for s in "abcd"] + [c("zz", 900, q=1)]
    result = plan(lines, "ship", cands, max_locations=max_locations)
    assert shape(result) == [[(f"l{s}", [(s, 1)]) for s in "abcd"]]
    assert result.options[0].locations == 4


def test_ship_limit_and_singles_before_splits() -> None:
    cands = [c(f"s{i}", 10 + i, a=1) for i in range(3)] + [c(f"h{i}", 0, a=1) for i in range(2)]
    result = plan([("a", 2)], "ship", cands, limit=4)
    assert [o.locations for o in result.options] == [2, 2, 2, 2]
    result = plan([("a", 1)], "ship", cands, limit=4)
    assert [a.location for o in result.options for a in o.allocations] == ["h0", "h1", "s0", "s1"]


# determinism ------------------------------------------------------------------------------------
def _network() -> list[Candidate]:
    rng = random.Random(12)
    skus = "abcde"
    out = []
    for i in range(60):
        held = {s: rng.randint(0, 3) for s in rng.sample(skus, rng.randint(1, 4))}
        km = None if i % 7 == 0 else round(rng.uniform(0.5, 80.0), 1)
        out.append(c(f"loc{i:02d}", rng.choice([10, 50, 100]), km, **held))
    return out


@pytest.mark.parametrize("fulfillment", ["pickup", "ship"])
@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_same_plan_whatever_the_candidate_order(fulfillment: Fulfillment, seed: int) -> None:
    cands = _network()
    lines = [("a", 1), ("b", 2), ("c", 1)] if fulfillment == "ship" else [("a", 1)]
    expected = plan(lines, fulfillment, cands, limit=20)
    assert expected.options  # the table must be non-trivial
    shuffled = list(cands)
    random.Random(seed).shuffle(shuffled)
    assert plan(lines, fulfillment, shuffled, limit=20) == expected


def test_repeated_location_counts_once() -> None:
    result = plan([("a", 1)], "ship", [c("x", 10, a=1), c("x", 10, a=1)])
    assert shape(result) == [[("x", [("a", 1)])]]
    assert result.considered == 1


# against a brute force ---------------------------------------------------------------------------
def _reference(
    lines: Lines, cands: list[Candidate], max_locations: int, limit: int
) -> list[list[tuple[str, list[tuple[str, int]]]]]:
    """The documented ship rules spelled naively: every set of 1..max_locations candidates that
    covers the order and has no covering proper subset, ranked by (size, priority sum, max
    distance, distance sum, positions emptied, -smallest remainder, sorted ids)."""
    far = 10.0**9

    def rank(x: Candidate) -> tuple[int, float, str]:
        return (x.priority, far if x.distance_km is None else x.distance_km, x.location)

    def covers(group: tuple[Candidate, ...]) -> bool:
        return all(sum(x.available.get(s, 0) for x in group) >= q for s, q in lines)

    def allocate(group: tuple[Candidate, ...]) -> list[tuple[str, list[tuple[str, int]]]]:
        ordered = sorted(group, key=rank)
        got: dict[str, list[tuple[str, int]]] = {x.location: [] for x in ordered}
        for sku, qty in lines:
            whole = [x for x in ordered if x.available.get(sku, 0) >= qty]
            if whole:
                got[whole[0].location].append((sku, qty))
                continue
            left = qty
            for x in ordered:
                take = min(left, x.available.get(sku, 0))
                if take:
                    got[x.location].append((sku, take))
                    left -= take
        return [(x.location, got[x.location]) for x in ordered]

    def key(group: tuple[Candidate, ...]) -> tuple[object, ...]:
        dists = [far if x.distance_km is None else x.distance_km for x in group]
        by_id = {x.location: x for x in group}
        remainders = [
            by_id[loc].available.get(sku, 0) - qty
            for loc, got in allocate(group)
            for sku, qty in got
        ]
        ids = tuple(sorted(x.location for x in group))
        return (
            len(group),
            sum(x.priority for x in group),
            max(dists),
            sum(dists),
            remainders.count(0),
            -min(remainders),
            ids,
        )

    found = []
    for size in range(1, max_locations + 1):
        for group in combinations(cands, size):
            smaller = any(covers(sub) for k in range(1, size) for sub in combinations(group, k))
            if covers(group) and not smaller:
                found.append(group)
    found.sort(key=key)
    return [allocate(group) for group in found[:limit]]


@pytest.mark.parametrize("seed", range(30))
def test_ship_matches_a_brute_force(seed: int) -> None:
    rng = random.Random(seed)
    skus = ["a", "b", "c", "d"][: rng.randint(2, 4)]
    cands = []
    for i in range(rng.randint(3, 9)):
        held = {s: rng.randint(0, 3) for s in rng.sample(skus, rng.randint(1, len(skus)))}
        km = None if rng.random() < 0.2 else float(rng.randint(1, 5))
        cands.append(c(f"l{i}", rng.choice([10, 20]), km, **held))
    lines = [(s, rng.randint(1, 3)) for s in skus]
    max_locations = rng.randint(1, 3)
    limit = rng.randint(1, 20)
    result = plan(lines, "ship", cands, max_locations=max_locations, limit=limit)
    assert shape(result) == _reference(lines, cands, max_locations, limit)


# 1,000 candidates -------------------------------------------------------------------------------
def test_ship_over_a_thousand_candidates() -> None:
    """5 lines, 1,002 candidates: nobody holds everything; the best split is the two warehouses
    (priority 10 + 20), found although 1,000 stores also hold parts of the order. Too many for the
    exact search of every pair, so the bounded search answers (its time is measured in
    loadtests/sourcing_plan_cost.py, not here)."""
    skus = ["s1", "s2", "s3", "s4", "s5"]
    rng = random.Random(1000)
    stores = []
    for i in range(1000):
        held = rng.sample(skus, rng.randint(1, 3))
        stores.append(c(f"st{i:04d}", 100, round(rng.uniform(1, 500), 1), **dict.fromkeys(held, 2)))
    cands = [
        *stores,
        c("wh-a", 10, 400.0, s1=50, s2=50, s3=50, s4=50),
        c("wh-b", 20, 700.0, s5=50),
    ]
    rng.shuffle(cands)
    lines = [(s, 2) for s in skus]
    result = plan(lines, "ship", cands, limit=1)
    assert result.considered == 1002
    assert shape(result) == [
        [("wh-a", [("s1", 2), ("s2", 2), ("s3", 2), ("s4", 2)]), ("wh-b", [("s5", 2)])]
    ]
    assert result.options[0].why == (
        "2 locations: wh-a (priority 10, 400.0 km away) has 4 of 5 lines, wh-b the rest; "
        "best found by a bounded search (too many candidates to try every combination)"
    )


def test_bounded_search_beats_the_greedy_cover() -> None:
    """208 partial holders (more pairs than EXACT_COMBINATIONS): the greedy cover, seeded from the
    six decoys holding 4 of 5 lines, would answer decoy + b (priority 105); the exact search over
    the best-ranked holders finds a + b (priority 10)."""
    skus = ["s1", "s2", "s3", "s4", "s5"]
    decoys = [c(f"decoy{i}", 100, s1=9, s2=9, s3=9, s4=9) for i in range(6)]
    filler = [c(f"f{i:03d}", 500, **{skus[i % 4]: 1}) for i in range(200)]
    cands = [*decoys, *filler, c("a", 5, s1=9, s2=9), c("b", 5, s3=9, s4=9, s5=9)]
    result = plan([(s, 1) for s in skus], "ship", cands, limit=2)
    assert shape(result) == [
        [("a", [("s1", 1), ("s2", 1)]), ("b", [("s3", 1), ("s4", 1), ("s5", 1)])],
        [("b", [("s3", 1), ("s4", 1), ("s5", 1)]), ("decoy0", [("s1", 1), ("s2", 1)])],
    ]
    assert result.options[0].why.endswith(
        "bounded search (too many candidates to try every combination)"
    )


def test_exact_search_bound_is_salesforces() -> None:
    assert EXACT_COMBINATIONS == 10_000


# why --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fulfillment", "lines", "candidates", "whys"),
    [
        pytest.param(
            "pickup",
            [("a", 1)],
            [c("chi-loop", km=1.2, a=1), c("chi-wick", km=3.0, a=1), c("chi-hyde", km=9.4, a=1)],
            [
                "chi-loop has every line, 1.2 km away (nearest of 3 locations that can)",
                "chi-wick has every line, 3.0 km away (2nd nearest of 3 locations that can)",
                "chi-hyde has every line, 9.4 km away (3rd nearest of 3 locations that can)",
            ],
            id="pickup-near",
        ),
        pytest.param(
            "pickup",
            [("a", 1)],
            [c("chi-loop", km=1.2, a=1)],
            ["chi-loop has every line, 1.2 km away (the only location that can)"],
            id="pickup-only-one",
        ),
        pytest.param(
            "pickup",
            [("a", 1)],
            [c("st-1", 20, a=1), c("st-2", 30, a=1)],
            [
                "st-1 has every line, priority 20 (first by priority of 2 locations that can)",
                "st-2 has every line, priority 30 (2nd by priority of 2 locations that can)",
            ],
            id="pickup-by-priority",
        ),
        pytest.param(
            "ship",
            [("a", 1)],
            [c("wh", 10, 40.0, a=9), c("st", 100, a=9)],
            [
                "wh has every line (priority 10, 40.0 km away; best of 2 locations that have it all)",
                "st has every line (priority 100; 2nd best of 2 locations that have it all)",
            ],
            id="ship-single",
        ),
        pytest.param(
            "ship",
            ABCD,
            [c("wh-joliet", 10, a=5, b=5, c=5), c("chi-loop", 100, 1.2, d=2)],
            [
                "2 locations: wh-joliet (priority 10) has 3 of 4 lines, chi-loop the rest; "
                "no single location has all"
            ],
            id="ship-pair",
        ),
        pytest.param(
            "ship",
            [("a", 1), ("b", 1), ("c", 1)],
            [c("x", 10, a=1), c("y", 20, b=1), c("z", 30, 2.5, c=1)],
            [
                "3 locations: x (priority 10) has 1 of 3 lines, y 1, z the rest; no 2 locations have all"
            ],
            id="ship-triple",
        ),
        pytest.param(
            "ship",
            [("a", 2)],
            [c("all", 50, a=2), c("x", 10, a=1), c("y", 20, a=1)],
            [
                "all has every line (priority 50; the only location that has it all)",
                "2 locations: x (priority 10) has 1 of 1 line, y the rest; "
                "more split than the options above",
            ],
            id="ship-split-after-single",
        ),
    ],
)
def test_why(
    fulfillment: Fulfillment, lines: Lines, candidates: list[Candidate], whys: list[str]
) -> None:
    assert [o.why for o in plan(lines, fulfillment, candidates).options] == whys


# candidate selection ----------------------------------------------------------------------------
LOOP = (41.8837, -87.6278)  # Chicago Loop


def loc(
    id: str,
    *,
    lat: float | None = None,
    lon: float | None = None,
    pickup: bool = False,
    ship_from: bool = False,
    groups: tuple[str, ...] = (),
) -> Location:
    kind = "store" if pickup else "warehouse"
    return Location(
        id=id,
        name=id,
        kind=kind,
        lat=lat,
        lon=lon,
        pickup=pickup,
        ship_from=ship_from,
        groups=list(groups),
    )


NETWORK = [
    loc("st-loop", lat=41.8837, lon=-87.6278, pickup=True, groups=("chicago",)),
    loc("st-evanston", lat=42.0451, lon=-87.6877, pickup=True, ship_from=True, groups=("chicago",)),
    loc("st-milwaukee", lat=43.0389, lon=-87.9065, pickup=True),  # ~ 129 km from the Loop
    loc("st-nocoords", pickup=True, groups=("chicago",)),
    loc("wh-joliet", lat=41.5250, lon=-88.0817, ship_from=True, groups=("online",)),
    loc("wh-dallas", lat=32.7767, lon=-96.7970, ship_from=True, groups=("online",)),
    loc("wh-nocoords", ship_from=True, groups=("online",)),
    loc("closed", lat=41.8837, lon=-87.6278),
]


@pytest.mark.parametrize(
    ("fulfillment", "kwargs", "expected"),
    [
        pytest.param(
            "pickup",
            {},
            ["st-evanston", "st-loop", "st-milwaukee", "st-nocoords"],
            id="pickup-flag",
        ),
        pytest.param(
            "ship",
            {},
            ["st-evanston", "wh-dallas", "wh-joliet", "wh-nocoords"],
            id="ship-from-flag",
        ),
        pytest.param(
            "pickup",
            {"near": LOOP},
            ["st-evanston", "st-loop"],
            id="pickup-near-default-radius-50km",
        ),
        pytest.param(
            "pickup",
            {"near": LOOP, "radius_km": 200.0},
            ["st-evanston", "st-loop", "st-milwaukee"],
            id="pickup-near-wider-radius",
        ),
        pytest.param(
            "pickup", {"near": LOOP, "radius_km": 1.0}, ["st-loop"], id="pickup-near-narrow"
        ),
        pytest.param(
            "ship",
            {"near": LOOP},
            ["st-evanston", "wh-dallas", "wh-joliet", "wh-nocoords"],
            id="ship-near-no-radius",
        ),
        pytest.param(
            "ship",
            {"near": LOOP, "radius_km": 100.0},
            ["st-evanston", "wh-joliet"],
            id="ship-near-radius",
        ),
        pytest.param(
            "pickup", {"group": "chicago"}, ["st-evanston", "st-loop", "st-nocoords"], id="group"
        ),
        pytest.param(
            "ship",
            {"group": "online", "ids": ["wh-dallas", "st-evanston", "nope"]},
            ["wh-dallas"],
            id="group-and-list",
        ),
        pytest.param("pickup", {"ids": []}, [], id="empty-list"),
        pytest.param("ship", {"group": "nowhere"}, [], id="unknown-group"),
    ],
)
def test_select_candidates(
    fulfillment: Fulfillment, kwargs: dict[str, object], expected: list[str]
) -> None:
    chosen = select_candidates(reversed(NETWORK), fulfillment, **kwargs)  # type: ignore[arg-type]
    assert [location.id for location, _ in chosen] == expected
    near = kwargs.get("near")
    for location, km in chosen:
        assert (km is None) == (near is None or location.lat is None)


def test_select_candidates_distances() -> None:
    chosen = {lo.id: km for lo, km in select_candidates(NETWORK, "pickup", near=LOOP)}
    assert chosen["st-loop"] == pytest.approx(0.0, abs=1e-9)
    assert chosen["st-evanston"] == pytest.approx(18.6, abs=0.1)


# bounds and the wire ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        pytest.param({"max_locations": 0}, "max_locations", id="max-locations-0"),
        pytest.param({"max_locations": 11}, "max_locations", id="max-locations-11"),
        pytest.param({"limit": 0}, "limit", id="limit-0"),
        pytest.param({"limit": 21}, "limit", id="limit-21"),
    ],
)
def test_bounds(kwargs: dict[str, int], field: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        plan([("a", 1)], "ship", [c("x", a=1)], **kwargs)
    assert caught.value.field == field


def test_plan_goes_on_the_wire() -> None:
    result = plan([("a", 1)], "ship", [c("x", 10, 2.5, a=1), c("y", 20, a=1)])
    assert msgspec.json.decode(msgspec.json.encode(result), type=Plan) == result
    assert msgspec.json.encode(result.options[0].allocations[0]) == (
        b'{"location":"x","distance_km":2.5,"lines":[{"sku":"a","qty":1}]}'
    )
    wire = msgspec.to_builtins(result)
    assert wire["considered"] == 2
    assert wire["options"][0]["allocations"] == [
        {"location": "x", "distance_km": 2.5, "lines": [{"sku": "a", "qty": 1}]}
    ]
    assert wire["options"][1]["allocations"] == [
        {"location": "y", "lines": [{"sku": "a", "qty": 1}]}
    ]
    assert result.options[0] == Option(
        allocations=[Allocation(location="x", lines=[PlanLine("a", 1)], distance_km=2.5)],
        locations=1,
        why=result.options[0].why,
    )
