"""What adapters may ask of the use cases' caches, as protocols (the stream fan-out looks locations
and API keys up without knowing how they are loaded or invalidated)."""

from __future__ import annotations

from typing import Protocol

from omnistock.domain.locations import Location
from omnistock.domain.roles import Principal


class LocationLookup(Protocol):
    """The known locations by id; ``get`` loads one not seen yet (None: unknown)."""

    @property
    def by_id(self) -> dict[str, Location]: ...

    async def get(self, location_id: str) -> Location | None: ...


class KeyLookup(Protocol):
    """The principal an API key secret stands for (None: unknown or deleted)."""

    async def principal(self, secret: str) -> Principal | None: ...
