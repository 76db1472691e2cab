"""The pruned ship search (domain/sourcing.py ``_Planner._pairs``) returns exactly the options of
the exhaustive one: on many random networks with many ties (few priorities, repeated and unknown
distances), every ``limit`` and ``max_locations``, and on hand-made cases at the bound's edge."""

from __future__ import annotations

import random

import pytest

from omnistock.domain import sourcing
from omnistock.domain.sourcing import Candidate, Plan, plan

Lines = list[tuple[str, int]]


def _both(
    monkeypatch: pytest.MonkeyPatch, lines: Lines, cands: list[Candidate], **kw: int
) -> tuple[Plan, Plan]:
    pruned = plan(lines, "ship", cands, **kw)
    with monkeypatch.context() as m:
        m.setattr(sourcing._Planner, "prune", False)
        full = plan(lines, "ship", cands, **kw)
    return pruned, full


def _network(rng: random.Random, size: int, skus: list[str]) -> list[Candidate]:
    out = []
    for i in range(size):
        held = {s: rng.randint(0, 3) for s in rng.sample(skus, rng.randint(1, len(skus)))}
        out.append(
            Candidate(
                location=f"l{i:03d}",
                priority=rng.choice([10, 10, 50, 100]),
                distance_km=rng.choice([None, 1.0, 2.0, 2.0, round(rng.uniform(0, 9), 1)]),
                available=held,
            )
        )
    return out


@pytest.mark.parametrize("seed", range(6))
def test_pruned_pairs_equal_exhaustive_on_random_networks(
    monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    rng = random.Random(seed)
    checked = 0
    for _ in range(120):
        skus = [f"s{n}" for n in range(rng.randint(1, 5))]
        lines = [(s, rng.randint(1, 3)) for s in skus]
        cands = _network(rng, rng.randint(1, 70), skus)
        limit = rng.choice([1, 2, 3, 5, 5, 8, 20])
        most = rng.choice([1, 2, 3, 3, 4])
        pruned, full = _both(monkeypatch, lines, cands, limit=limit, max_locations=most)
        assert pruned == full
        checked += len(full.options)
    # The instances did produce options (splits included), so the comparison is not vacuous.
    assert checked > 100


def test_pruned_pairs_keep_ties_at_the_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """Many pairs share the bound's cheap key: the tie-breaks past it (stock left, ids) still
    choose among all of them."""
    cands = [
        Candidate(location=f"a{i}", priority=10, distance_km=1.0, available={"x": 2 + i % 2})
        for i in range(6)
    ] + [
        Candidate(location=f"b{i}", priority=10, distance_km=1.0, available={"y": 2 + i % 3})
        for i in range(6)
    ]
    pruned, full = _both(monkeypatch, [("x", 2), ("y", 2)], cands, limit=5)
    assert pruned == full
    assert [o.locations for o in full.options] == [2] * 5
    # Nothing emptied first (a1/a3/a5 hold 3 x; b1/b4 3 y, b2/b5 4), then the ids.
    assert [[a.location for a in o.allocations] for o in full.options] == [
        ["a1", "b1"],
        ["a1", "b2"],
        ["a1", "b4"],
        ["a1", "b5"],
        ["a3", "b1"],
    ]


def test_pruned_pairs_stop_at_the_priority_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """Five cheap pairs fill the bound; a pair of priority 100 locations cannot enter it."""
    cheap = [Candidate(location=f"c{i}", priority=1, available={"x": 1, "y": 0}) for i in range(5)]
    cheap += [Candidate(location=f"d{i}", priority=1, available={"y": 1}) for i in range(1)]
    dear = [
        Candidate(location=f"z{i}", priority=100, distance_km=0.1, available={"x": 1, "y": 1})
        for i in range(2)
    ]
    pruned, full = _both(monkeypatch, [("x", 1), ("y", 1)], cheap + dear, limit=5)
    assert pruned == full
    # The two dear locations each have everything: they are the singles, ranked first.
    assert [o.locations for o in full.options] == [1, 1, 2, 2, 2]
