"""Sourcing plans: which location(s) should fulfil an order (a dry run: nothing is held). The
candidates come from the location cache, their channel availability for every line from one
batched read, the ranking from the pure planner (domain/sourcing.py)."""

from __future__ import annotations

from collections.abc import Sequence

from omnistock.domain.locations import Location, channel_fence
from omnistock.domain.reservations import sum_lines
from omnistock.domain.roles import Principal, require_reserver, reservable_ids
from omnistock.domain.sourcing import Candidate, Fulfillment, Plan, plan, select_candidates
from omnistock.redis.store import StockStore
from omnistock.usecases.caches import LocationCache


class Sourcing:
    """The sourcing capability of one process."""

    def __init__(
        self, store: StockStore, locations: LocationCache, max_cells: int = 20_000
    ) -> None:
        self._store = store
        self._locations = locations
        self._max_cells = max_cells

    async def plan(
        self,
        who: Principal,
        lines: Sequence[tuple[str, int]],
        fulfillment: Fulfillment,
        *,
        near: tuple[float, float] | None = None,
        radius_km: float | None = None,
        group: str | None = None,
        ids: Sequence[str] | None = None,
        channel: str | None = None,
        max_locations: int,
        limit: int,
    ) -> Plan:
        """The ranked options (API.md "Sourcing"); store keys plan over their own locations."""
        order, candidates = await self.candidates(
            who, lines, fulfillment, near=near, radius_km=radius_km, group=group, ids=ids,
            channel=channel,
        )  # fmt: skip
        return plan(order, fulfillment, candidates, max_locations=max_locations, limit=limit)

    async def candidates(
        self,
        who: Principal,
        lines: Sequence[tuple[str, int]],
        fulfillment: Fulfillment,
        *,
        near: tuple[float, float] | None = None,
        radius_km: float | None = None,
        group: str | None = None,
        ids: Sequence[str] | None = None,
        channel: str | None = None,
    ) -> tuple[list[tuple[str, int]], list[Candidate]]:
        """The order (lines summed per sku) and the locations ``who`` may source it from, with
        their channel availability of every line, read in one batch. At most ``max_cells``
        (candidates x lines) are read: past it the nearest (else best-priority) are kept."""
        require_reserver(who)
        allowed = reservable_ids(who, frozenset(ids) if ids is not None else None)
        chosen = select_candidates(
            self._locations.all(),
            fulfillment,
            near=near,
            radius_km=radius_km,
            group=group,
            ids=allowed,
        )
        order = sum_lines(lines)
        skus = [sku for sku, _ in order]
        width = max(1, len(skus))
        if len(chosen) * width > self._max_cells:
            chosen = sorted(chosen, key=_nearest_first)[: max(1, self._max_cells // width)]
        found = await self._store.available_at([loc for loc, _ in chosen], skus) if skus else []
        candidates = []
        for n, (loc, dist) in enumerate(chosen):
            fence = channel_fence(loc, channel)
            row = found[n * width : (n + 1) * width]
            candidates.append(
                Candidate(
                    location=loc.id,
                    priority=loc.priority,
                    distance_km=None if dist is None else round(dist, 3),
                    # The channel's availability: its fence off, never below 0 (for_channel's);
                    # without a fence the read's units already are (never below 0).
                    available=dict(zip(skus, row, strict=True))
                    if not fence
                    else {sku: max(0, units - fence) for sku, units in zip(skus, row, strict=True)},
                )
            )
        return order, candidates


def _nearest_first(pair: tuple[Location, float | None]) -> tuple[float, int, str]:
    loc, dist = pair
    return (float("inf") if dist is None else dist, loc.priority, loc.id)
