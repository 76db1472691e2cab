"""Who may plan sourcing, and over which locations (domain/roles.py)."""

from __future__ import annotations

import pytest

from omnistock.domain.errors import Forbidden
from omnistock.domain.roles import Principal, Role, require_reserver, reservable_ids


def who(role: Role, *locations: str) -> Principal:
    return Principal(id="k", name="k", role=role, locations=frozenset(locations))


def test_feed_keys_may_not_plan_others_may() -> None:
    with pytest.raises(Forbidden):
        require_reserver(who(Role.FEED))
    for role in (Role.ADMIN, Role.INTEGRATION, Role.STOREFRONT, Role.STORE):
        require_reserver(who(role))


def test_store_keys_plan_over_their_own_locations_only() -> None:
    store = who(Role.STORE, "a", "b")
    assert reservable_ids(store, None) == {"a", "b"}
    assert reservable_ids(store, frozenset({"b", "c"})) == {"b"}
    assert reservable_ids(who(Role.ADMIN), None) is None
    assert reservable_ids(who(Role.STOREFRONT), frozenset({"c"})) == {"c"}
