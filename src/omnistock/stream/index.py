"""The subscription index of one process: which subscriptions a change of (location, sku) may
concern, by location, group and sku, plus the firehose. Pure data: no IO."""

from __future__ import annotations

from collections.abc import Callable

from omnistock.stream.connection import Subscription


class SubscriptionIndex:
    """Subscriptions by the filter values they name (a filtered one under each value)."""

    def __init__(self) -> None:
        self.firehose: set[Subscription] = set()
        self.by_location: dict[str, set[Subscription]] = {}
        self.by_group: dict[str, set[Subscription]] = {}
        self.by_sku: dict[str, set[Subscription]] = {}

    def __bool__(self) -> bool:
        return bool(self.firehose or self.by_location or self.by_sku or self.by_group)

    def matching(
        self, location: str, sku: str, groups_of: Callable[[str], list[str]]
    ) -> list[Subscription]:
        """The subscriptions that want a change of (``location``, ``sku``), each once."""
        buckets = [
            b for b in (self.firehose, self.by_location.get(location), self.by_sku.get(sku)) if b
        ]
        groups: list[str] = []
        if self.by_group:
            groups = groups_of(location)
            buckets += [b for g in groups if (b := self.by_group.get(g))]
        if not buckets:
            return []
        if len(buckets) == 1:
            return [s for s in buckets[0] if s.wants(location, sku, groups)]
        seen: set[Subscription] = set()
        found: list[Subscription] = []
        for bucket in buckets:
            for sub in bucket:
                if sub not in seen:
                    seen.add(sub)
                    if sub.wants(location, sku, groups):
                        found.append(sub)
        return found

    def add(self, sub: Subscription) -> None:
        if sub.firehose:
            self.firehose.add(sub)
        for index, value in self._buckets(sub):
            index.setdefault(value, set()).add(sub)

    def remove(self, sub: Subscription) -> None:
        self.firehose.discard(sub)
        for index, value in self._buckets(sub):
            bucket = index.get(value)
            if bucket is not None:
                bucket.discard(sub)
                if not bucket:
                    del index[value]

    def _buckets(self, sub: Subscription) -> list[tuple[dict[str, set[Subscription]], str]]:
        if sub.locations is not None or sub.groups is not None:
            return [(self.by_location, x) for x in sub.locations or ()] + [
                (self.by_group, g) for g in sub.groups or ()
            ]
        if sub.skus is not None:
            return [(self.by_sku, s) for s in sub.skus]
        return []
