"""Sourcing (pure): which location(s) should fulfil an order, ranked and explained.

The caller reads each candidate's channel availability (already net of channel fences) and passes
it in; nothing here does IO. Rules as implemented (API.md "Sourcing"):

pickup: every option is ONE location holding every line in full (``max_locations`` is ignored).
  With ``near`` they are ranked nearest first (then lower ``priority``, then id; a location
  without a distance last); without it by ``priority``, then id.

ship: every option covers every line from at most ``max_locations`` locations and is ranked by
  1. fewest locations;
  2. lowest SUM of the used locations' priorities;
  3. nearest: smallest MAX distance of the used locations (the farthest parcel decides when the
     order is complete), then smallest sum; a location without a distance counts as 10^9 km away;
  4. most stock left behind: fewest positions (location, sku) the allocation empties, then the
     largest smallest remainder over the positions it takes from (avoid taking last units);
  5. the used location ids, sorted (so the order never depends on the candidates' order).
  Only minimal sets are offered: a set is skipped when fewer of its locations already cover the
  order (a pair holding a location that has everything is the single option, not a pair).
  Search: singles (always all); then every pair, then every triple of the locations that hold
  something but not everything, while the combinations stay within EXACT_COMBINATIONS in all (as
  Salesforce does). Past the bound: every set of the best-ranked such locations that fits in what
  is left of it, plus a greedy cover seeded from the best candidates, and the search stops there.
  Sets of 4+ locations come from the greedy cover alone.
  Inside a set each sku is taken whole from the best-ranked location (priority, distance, id) that
  holds all of it, else filled from the locations in that rank order.
"""

from __future__ import annotations

import math
from bisect import bisect_right, insort
from collections.abc import Collection, Iterable, Iterator, Sequence
from itertools import combinations, combinations_with_replacement, product
from typing import Literal

import msgspec

from omnistock.domain.errors import ValidationFailed
from omnistock.domain.locations import Location, distance_km
from omnistock.domain.reservations import sum_lines

Fulfillment = Literal["pickup", "ship"]
DEFAULT_MAX_LOCATIONS = 3
MAX_MAX_LOCATIONS = 10
DEFAULT_LIMIT = 5
MAX_LIMIT = 20
DEFAULT_PICKUP_RADIUS_KM = 50.0
DEFAULT_PRIORITY = 100
# Combinations (pairs + triples) tried exactly per plan; past it the search is bounded (module doc).
EXACT_COMBINATIONS = 10_000
# How many of the best candidates seed a greedy cover (each seed is one greedy run).
GREEDY_SEEDS = 5
# An unknown distance ranks as this far: after every real one, yet sums still tell known parts apart.
_FAR = 1e9


class Candidate(msgspec.Struct, frozen=True, kw_only=True):
    """A location that may fulfil: its ``priority`` (lower preferred), its distance from ``near``
    (None without ``near`` or coordinates) and its units ``available`` per sku, net of fences."""

    location: str
    priority: int = DEFAULT_PRIORITY
    distance_km: float | None = None
    available: dict[str, int] = msgspec.field(default_factory=dict)


class PlanLine(msgspec.Struct, frozen=True):
    sku: str
    qty: int


class Allocation(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What one location supplies."""

    location: str
    distance_km: float | None = None
    lines: list[PlanLine]


class Option(msgspec.Struct, frozen=True, kw_only=True):
    """One way to fulfil the whole order; ``why`` says in plain words why it ranks where it does."""

    allocations: list[Allocation]
    locations: int
    why: str


class Plan(msgspec.Struct, frozen=True, kw_only=True):
    """The ranked options (``[]``: none) and how many candidates were considered."""

    options: list[Option]
    considered: int


def select_candidates(
    locations: Iterable[Location],
    fulfillment: Fulfillment,
    *,
    near: tuple[float, float] | None = None,
    radius_km: float | None = None,
    group: str | None = None,
    ids: Collection[str] | None = None,
) -> list[tuple[Location, float | None]]:
    """The locations a plan may use, with their distance from ``near`` (None without it or without
    coordinates), sorted by id: in ``group`` and ``ids`` when given, ``pickup`` (pickup) or
    ``ship_from`` (ship) set, and within the radius of ``near`` (``radius_km``, or 50 km for
    pickup; ship without ``radius_km`` has no radius). A radius excludes locations without
    coordinates."""
    wanted = set(ids) if ids is not None else None
    radius = radius_km
    if radius is None and near is not None and fulfillment == "pickup":
        radius = DEFAULT_PICKUP_RADIUS_KM
    found: list[tuple[Location, float | None]] = []
    for loc in locations:
        if not (loc.pickup if fulfillment == "pickup" else loc.ship_from):
            continue
        if group is not None and group not in loc.groups:
            continue
        if wanted is not None and loc.id not in wanted:
            continue
        dist: float | None = None
        if near is not None and loc.lat is not None and loc.lon is not None:
            dist = distance_km(near[0], near[1], loc.lat, loc.lon)
        if near is not None and radius is not None and (dist is None or dist > radius):
            continue
        found.append((loc, dist))
    found.sort(key=lambda pair: pair[0].id)
    return found


def plan(
    lines: Iterable[tuple[str, int]],
    fulfillment: Fulfillment,
    candidates: Sequence[Candidate],
    *,
    max_locations: int = DEFAULT_MAX_LOCATIONS,
    limit: int = DEFAULT_LIMIT,
) -> Plan:
    """Rank the ways ``candidates`` can fulfil ``lines`` (duplicates summed) as the module doc
    says; at most ``limit`` options, best first."""
    if not 1 <= max_locations <= MAX_MAX_LOCATIONS:
        raise ValidationFailed("max_locations", f"must be 1..{MAX_MAX_LOCATIONS}")
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationFailed("limit", f"must be 1..{MAX_LIMIT}")
    order = [(sku, qty) for sku, qty in sum_lines(lines) if qty > 0]
    # One entry per location id (a repeated id is the caller's mistake: its first entry counts),
    # sorted by rank so nothing below depends on the order the caller passed them in.
    unique: dict[str, Candidate] = {}
    for cand in candidates:
        unique.setdefault(cand.location, cand)
    cands = sorted(unique.values(), key=_rank)
    considered = len(cands)
    if not order or not cands:
        return Plan(options=[], considered=considered)
    planner = _Planner(order, cands)
    if fulfillment == "pickup":
        return Plan(options=planner.pickup(limit), considered=considered)
    return Plan(options=planner.ship(max_locations, limit), considered=considered)


def _rank(c: Candidate) -> tuple[int, float, str]:
    """How good one location is on its own: priority, then distance, then id."""
    return (c.priority, _FAR if c.distance_km is None else c.distance_km, c.location)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _fit(n: int, size: int, budget: int) -> int:
    """The largest k <= n with C(k, size) <= budget."""
    k = n
    while k > size and math.comb(k, size) > budget:
        k -= 1
    return k


def _ordinal(place: int) -> str:
    """0 -> "" (the best needs no number), 1 -> "2nd ", 2 -> "3rd ", 3 -> "4th "..."""
    if place == 0:
        return ""
    n = place + 1
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix} "


def _where(c: Candidate) -> str:
    return "" if c.distance_km is None else f", {c.distance_km:.1f} km away"


class _Planner:
    # Prune the pair search by the rank bound (``_pairs``); False: the exhaustive loop (tests).
    prune = True

    def __init__(self, order: list[tuple[str, int]], cands: list[Candidate]) -> None:
        self.skus = [sku for sku, _ in order]
        self.need = [qty for _, qty in order]
        self.cands = cands
        self.avail = [[max(0, c.available.get(sku, 0)) for sku in self.skus] for c in cands]
        every = (1 << len(order)) - 1
        self.every = every
        # Bit i set: the candidate holds all of line i (full) / some of it (some).
        self.full = []
        self.some = []
        bits = [(1 << k, q) for k, q in enumerate(self.need)]
        for row in self.avail:
            full = some = 0
            for (bit, q), a in zip(bits, row, strict=True):
                if a > 0:
                    some |= bit
                    if a >= q:
                        full |= bit
            self.full.append(full)
            self.some.append(some)
        self.prio = [c.priority for c in cands]
        self.far = [_FAR if c.distance_km is None else c.distance_km for c in cands]

    # pickup ---------------------------------------------------------------------------------
    def pickup(self, limit: int) -> list[Option]:
        able = [i for i in range(len(self.cands)) if self.full[i] == self.every]
        with_near = any(self.cands[i].distance_km is not None for i in able)
        if with_near:
            able.sort(key=lambda i: self._by_distance(self.cands[i]))
        options = []
        for place, i in enumerate(able[:limit]):
            c = self.cands[i]
            many = len(able)
            if with_near:
                km = "distance unknown" if c.distance_km is None else f"{c.distance_km:.1f} km away"
                rest = f"{_ordinal(place)}nearest of {many} locations that can"
                why = f"{c.location} has every line, {km}"
            else:
                rest = f"{_ordinal(place) or 'first '}by priority of {many} locations that can"
                why = f"{c.location} has every line, priority {c.priority}"
            why += " (the only location that can)" if many == 1 else f" ({rest})"
            options.append(self._option((i,), why))
        return options

    @staticmethod
    def _by_distance(c: Candidate) -> tuple[float, int, str]:
        return (_FAR if c.distance_km is None else c.distance_km, c.priority, c.location)

    # ship -----------------------------------------------------------------------------------
    def ship(self, max_locations: int, limit: int) -> list[Option]:
        n = len(self.cands)
        singles = [(i,) for i in range(n) if self.full[i] == self.every]
        found: list[tuple[tuple[float, ...], tuple[int, ...], str]] = []
        for s in singles:
            found.append((self._cheap_key(s), s, "single"))
        # Locations that hold something of the order but not all of it: the material of splits.
        parts = [i for i in range(n) if self.full[i] != self.every and self.some[i]]
        budget = EXACT_COMBINATIONS
        covers: set[tuple[int, ...]] = set()
        for size in range(2, max_locations + 1):
            if len(found) >= limit:
                break
            if size > 3:
                how, pool = "greedy", []
            elif math.comb(len(parts), size) <= budget:
                how, pool = "exact", parts
            else:
                # Too many: every set of the best-ranked parts that fit in the budget, plus the
                # greedy cover over all of them.
                how, pool = "bounded", parts[: _fit(len(parts), size, budget)]
            budget -= math.comb(len(pool), size)
            if size == 2 and self.prune:
                self._pairs(pool, how, limit, found, covers)
            else:
                for combo in self._combinations(pool, size):
                    if self._covers(combo) and self._minimal(combo, covers):
                        covers.add(combo)
                        found.append((self._cheap_key(combo), combo, how))
            if how == "exact":
                continue
            for combo in self._greedy(parts, max_locations):
                if len(combo) >= size and combo not in covers:
                    covers.add(combo)
                    found.append((self._cheap_key(combo), combo, "bounded"))
            break
        if not found:
            return []
        # The full key (stock left behind, ids) costs an allocation: only for what can still
        # make the first ``limit`` on the cheap key (locations, priority, distance).
        found.sort(key=lambda item: item[0])
        cutoff = found[min(limit, len(found)) - 1][0]
        best = sorted(
            (
                (self._key(combo, cheap), combo, how)
                for cheap, combo, how in found
                if cheap <= cutoff
            ),
            key=lambda item: item[0],
        )[:limit]
        fewest = len(best[0][1])
        return [
            self._option(combo, self._ship_why(combo, how, len(singles), fewest, rank))
            for rank, (_, combo, how) in enumerate(best)
        ]

    def _pairs(
        self,
        pool: list[int],
        how: str,
        limit: int,
        found: list[tuple[tuple[float, ...], tuple[int, ...], str]],
        covers: set[tuple[int, ...]],
    ) -> None:
        """Every covering pair of ``pool`` into ``found``/``covers``, except pairs that provably
        cannot make the first ``limit`` (same result as the exhaustive loop, tested): once
        ``limit`` options are known, a pair whose cheap key is above the ``limit``-th best is
        dropped, and since ``pool`` is in rank order (priority ascending) the priority sum only
        grows along it, so the loops stop at the first pair over the bound's priority. Pruned
        pairs are never needed later: with ``limit`` found no larger set is searched."""
        every, some, full, avail, prio, far = (
            self.every, self.some, self.full, self.avail, self.prio, self.far
        )  # fmt: skip
        lines = list(enumerate(self.need))
        # The ``limit`` best cheap keys so far (sorted): the bound once it is full.
        best = sorted(item[0] for item in found)[:limit]
        groups: dict[int, list[int]] = {}
        for i in pool:
            groups.setdefault(some[i], []).append(i)
        masks = sorted(groups)
        for i in pool:
            if len(best) >= limit and 2 * prio[i] > best[-1][1]:
                break
            need = every & ~some[i]
            full_i, avail_i, prio_i, far_i = full[i], avail[i], prio[i], far[i]
            for m in masks:
                if m & need != need:
                    continue
                group = groups[m]
                for n in range(bisect_right(group, i), len(group)):
                    j = group[n]
                    if len(best) >= limit and prio_i + prio[j] > best[-1][1]:
                        break
                    # _covers for a pair whose locations hold some of every line (the masks).
                    rest = every & ~(full_i | full[j])
                    if rest:
                        avail_j = avail[j]
                        for k, q in lines:
                            if rest >> k & 1 and avail_i[k] + avail_j[k] < q:
                                break
                        else:
                            rest = 0
                        if rest:
                            continue
                    combo = (i, j)
                    far_j = far[j]
                    # _cheap_key's (locations, priorities, farthest, distances), inline.
                    key = (2, prio_i + prio[j], max(far_i, far_j), far_i + far_j)
                    if len(best) >= limit:
                        if key > best[-1]:
                            continue
                        best.pop()
                    insort(best, key)
                    covers.add(combo)
                    found.append((key, combo, how))

    def _combinations(self, parts: list[int], size: int) -> Iterator[tuple[int, ...]]:
        """Every ``size``-set of ``parts`` (ascending indices) whose locations together hold
        some of every line: sets are built per group of equal "holds some" masks, so groups
        that cannot cover are skipped whole. Same sets, in a different order, as
        ``combinations(parts, size)`` filtered by that mask."""
        groups: dict[int, list[int]] = {}
        for i in parts:
            groups.setdefault(self.some[i], []).append(i)
        for masks in combinations_with_replacement(sorted(groups), size):
            union = 0
            for m in masks:
                union |= m
            if union != self.every:
                continue
            picks = [combinations(groups[m], masks.count(m)) for m in sorted(set(masks))]
            for chosen in product(*picks):
                yield tuple(sorted(i for pick in chosen for i in pick))

    def _covers(self, combo: tuple[int, ...]) -> bool:
        full = 0
        some = 0
        for i in combo:
            full |= self.full[i]
            some |= self.some[i]
        if full == self.every:
            return True
        if some != self.every:
            return False
        rest = self.every & ~full
        for line, q in enumerate(self.need):
            if rest >> line & 1 and sum(self.avail[i][line] for i in combo) < q:
                return False
        return True

    @staticmethod
    def _minimal(combo: tuple[int, ...], covers: set[tuple[int, ...]]) -> bool:
        """No smaller covering subset was found (singles never enter ``parts``)."""
        if len(combo) < 3:
            return True
        return not any(sub in covers for sub in combinations(combo, len(combo) - 1))

    def _greedy(self, parts: list[int], max_locations: int) -> list[tuple[int, ...]]:
        """Greedy covers, one per seed (the best few parts by lines held in full, then rank):
        add the location that supplies most of what is still missing until covered."""
        seeds = sorted(parts, key=lambda i: (-self.full[i].bit_count(), i))[:GREEDY_SEEDS]
        out: list[tuple[int, ...]] = []
        for seed in seeds:
            chosen = [seed]
            missing = [max(0, q - self.avail[seed][k]) for k, q in enumerate(self.need)]
            while any(missing) and len(chosen) < max_locations:
                best = -1
                best_score = (0, 0)
                for i in parts:
                    if i in chosen:
                        continue
                    row = self.avail[i]
                    whole = units = 0
                    for k, m in enumerate(missing):
                        if m:
                            got = row[k] if row[k] < m else m
                            units += got
                            whole += got == m
                    # Ties keep the lower index, i.e. the better-ranked location.
                    if (whole, units) > best_score:
                        best, best_score = i, (whole, units)
                if best < 0:
                    break
                chosen.append(best)
                missing = [max(0, m - self.avail[best][k]) for k, m in enumerate(missing)]
            if any(missing):
                continue
            combo = self._shrink(sorted(chosen))
            if combo not in out:
                out.append(combo)
        return out

    def _shrink(self, combo: list[int]) -> tuple[int, ...]:
        """Drop locations the others do without (worst-ranked first), keeping the set minimal."""
        for i in sorted(combo, reverse=True):
            rest = tuple(j for j in combo if j != i)
            if rest and self._covers(rest):
                combo = list(rest)
        return tuple(combo)

    def _allocate(self, combo: Sequence[int]) -> dict[int, list[PlanLine]]:
        """Each sku whole from the best-ranked location holding all of it, else filled in rank
        order. ``combo`` is in rank order (indices into the rank-sorted candidates)."""
        out: dict[int, list[PlanLine]] = {i: [] for i in combo}
        for k, q in enumerate(self.need):
            whole = next((i for i in combo if self.avail[i][k] >= q), None)
            if whole is not None:
                out[whole].append(PlanLine(self.skus[k], q))
                continue
            left = q
            for i in combo:
                take = min(left, self.avail[i][k])
                if take:
                    out[i].append(PlanLine(self.skus[k], take))
                    left -= take
        return out

    def _cheap_key(self, combo: tuple[int, ...]) -> tuple[float, ...]:
        """Locations used, sum of their priorities, farthest distance, sum of distances."""
        far = [self.far[i] for i in combo]
        return (len(combo), sum(self.prio[i] for i in combo), max(far), sum(far))

    def _key(self, combo: tuple[int, ...], cheap: tuple[float, ...]) -> tuple[object, ...]:
        """The cheap key, then positions emptied (fewer first), then the smallest remainder
        left at a position taken from (larger first), then the sorted location ids."""
        alloc = self._allocate(combo)
        index = {sku: k for k, sku in enumerate(self.skus)}
        emptied = 0
        least = math.inf
        for i, got in alloc.items():
            for line in got:
                left = self.avail[i][index[line.sku]] - line.qty
                emptied += left == 0
                least = min(least, left)
        ids = tuple(sorted(self.cands[i].location for i in combo))
        return (*cheap, emptied, -least, ids)

    def _ship_why(
        self,
        combo: tuple[int, ...],
        how: str,
        singles: int,
        fewest: int,
        place: int,
    ) -> str:
        if len(combo) == 1:
            c = self.cands[combo[0]]
            rest = (
                "the only location that has it all"
                if singles == 1
                else f"{_ordinal(place)}best of {singles} locations that have it all"
            )
            return f"{c.location} has every line (priority {c.priority}{_where(c)}; {rest})"
        alloc = self._allocate(combo)
        total = len(self.need)
        parts = []
        for pos, i in enumerate(combo):
            c = self.cands[i]
            held = len(alloc[i])
            if pos == 0:
                parts.append(
                    f"{c.location} (priority {c.priority}{_where(c)}) has {held} of "
                    f"{_plural(total, 'line')}"
                )
            elif pos == len(combo) - 1:
                parts.append(f"{c.location} the rest")
            else:
                parts.append(f"{c.location} {held}")
        head = f"{len(combo)} locations: " + ", ".join(parts)
        if len(combo) > fewest:
            tail = "more split than the options above"
        elif how == "bounded":
            tail = "best found by a bounded search (too many candidates to try every combination)"
        elif len(combo) == 2:
            tail = "no single location has all"
        else:
            tail = f"no {len(combo) - 1} locations have all"
        return f"{head}; {tail}"

    def _option(self, combo: tuple[int, ...], why: str) -> Option:
        alloc = self._allocate(combo)
        allocations = [
            Allocation(
                location=self.cands[i].location,
                distance_km=self.cands[i].distance_km,
                lines=alloc[i],
            )
            for i in combo
        ]
        return Option(allocations=allocations, locations=len(combo), why=why)
