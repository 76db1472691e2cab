"""Feeds: the positions of the chosen locations, walked a page at a time and handed to the
renderer (feeds/google_local.py), with a stream cursor taken before the first read."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

from omnistock.domain.locations import Location
from omnistock.feeds import google_local
from omnistock.redis.scan import positions_of
from omnistock.redis.store import StockStore
from omnistock.stream.fanout import Fanout
from omnistock.usecases.caches import LocationCache

# The Google local feed's media type and header line, for the handler that streams it.
GOOGLE_LOCAL_MEDIA_TYPE = google_local.MEDIA_TYPE
GOOGLE_LOCAL_HEADER = google_local.HEADER


class Feeds:
    """The feeds capability of one process."""

    def __init__(self, store: StockStore, locations: LocationCache, fanout: Fanout) -> None:
        self._store = store
        self._locations = locations
        self._fanout = fanout

    async def locations(self, location: str | None, group: str | None) -> list[Location]:
        """The one location, the group's (by id), or every location."""
        if location is not None:
            return [await self._locations.require(location)]
        if group is not None:
            return sorted(self._locations.by_group.get(group, []), key=lambda loc: loc.id)
        return self._locations.all()

    async def cursor(self) -> str:
        """A stream cursor now: every change after it is replayed on resume."""
        return await self._fanout.current_cursor()

    async def google_local_rows(self, locations: Iterable[Location]) -> AsyncIterator[str]:
        """The Google local feed's rows (no header), location by location, a chunk at a time."""
        for location in locations:
            async for found in positions_of(self._store, location):
                yield google_local.rows(found)
