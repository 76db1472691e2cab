"""API key roles and what each may do."""

from __future__ import annotations

from enum import StrEnum

import msgspec

from omnistock.domain.errors import Forbidden


class Role(StrEnum):
    ADMIN = "admin"
    INTEGRATION = "integration"
    STORE = "store"
    STOREFRONT = "storefront"
    FEED = "feed"


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    """The caller behind an API key. ``locations`` limits a ``store`` key's writes."""

    id: str
    name: str
    role: Role
    locations: frozenset[str] = frozenset()


class ApiKey(msgspec.Struct, kw_only=True, omit_defaults=True):
    """An API key without its secret (``key`` is set only in the response that creates it)."""

    id: str
    name: str
    role: Role
    locations: list[str]
    created_at: str
    key: str | None = msgspec.field(default=None)


_STOCK_WRITERS = {Role.ADMIN, Role.INTEGRATION, Role.STORE}
_RESERVERS = {Role.ADMIN, Role.INTEGRATION, Role.STORE, Role.STOREFRONT}
_STREAMERS = {Role.ADMIN, Role.INTEGRATION, Role.STOREFRONT, Role.FEED, Role.STORE}
_FIREHOSE = {Role.ADMIN, Role.INTEGRATION, Role.FEED}
_FEED_READERS = {Role.ADMIN, Role.INTEGRATION, Role.FEED}


def require_admin(who: Principal) -> None:
    """Keys and locations are managed by admin keys only."""
    if who.role is not Role.ADMIN:
        raise Forbidden(f"role {who.role} may not manage keys or locations; admin only")


def require_stock_writer(who: Principal) -> None:
    """Roles that may change stock somewhere (store keys: at their own locations)."""
    if who.role not in _STOCK_WRITERS:
        raise Forbidden(f"role {who.role} may not change stock")


def stock_write_refusal(who: Principal, location: str) -> str | None:
    """Why ``who`` (a stock writer) may not change stock at ``location``, or None when it may:
    store keys write only at their own locations (the one statement of that rule)."""
    if who.role is Role.STORE and location not in who.locations:
        return f"this store key may not change stock at location {location!r}"
    return None


def require_stock_write(who: Principal, location: str) -> None:
    """Stock writes: admin and integration anywhere, store keys at their own locations."""
    require_stock_writer(who)
    refusal = stock_write_refusal(who, location)
    if refusal is not None:
        raise Forbidden(refusal)


def require_reserve(who: Principal, location: str) -> None:
    """Reservations: all but feed keys; store keys only at their own locations."""
    if who.role not in _RESERVERS:
        raise Forbidden(f"role {who.role} may not reserve stock")
    if who.role is Role.STORE and location not in who.locations:
        raise Forbidden(f"this store key may not reserve at location {location!r}")


def require_stream(who: Principal, firehose: bool) -> None:
    """The change stream; an unfiltered subscription (firehose) needs admin, integration or feed."""
    if who.role not in _STREAMERS:
        raise Forbidden(f"role {who.role} may not follow the stream")
    if firehose and who.role not in _FIREHOSE:
        raise Forbidden("an unfiltered subscription needs an admin, integration or feed key")


def require_feed(who: Principal) -> None:
    """Feeds are for admin, integration and feed keys."""
    if who.role not in _FEED_READERS:
        raise Forbidden(f"role {who.role} may not read feeds")


def may_see_reservation(
    who: Principal, location: str, owner: str | None, owner_role: str | None
) -> bool:
    """A reservation a ``storefront`` key created belongs to it: only that key, admin and
    integration keys, and store keys of its location may see or act on it (anyone else is told
    it does not exist). Others' reservations follow the role rules of each action."""
    if owner_role != Role.STOREFRONT or who.id == owner:
        return True
    if who.role in (Role.ADMIN, Role.INTEGRATION):
        return True
    return who.role is Role.STORE and location in who.locations


def require_reserver(who: Principal) -> None:
    """Roles that may reserve somewhere (store keys: at their own locations), e.g. to plan where
    to reserve."""
    if who.role not in _RESERVERS:
        raise Forbidden(f"role {who.role} may not reserve stock")


def reservable_ids(who: Principal, ids: frozenset[str] | None) -> frozenset[str] | None:
    """The location ids ``who`` may reserve at, narrowed to ``ids`` when given (None: any)."""
    if who.role is Role.STORE:
        return who.locations if ids is None else ids & who.locations
    return ids
