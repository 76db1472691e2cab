"""The role matrix (API.md "Roles" and "Roles (additions)") as one table: every role x every right.

Each key below has id ``k-me`` and locations ``{"here"}`` whatever its role, so the role is the only
thing that changes along a row; ``there`` is a location the key does not hold. Cells:
``OK`` allowed, ``NO`` Forbidden (403), ``HIDE`` the reservation is not shown (404 to the caller).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from omnistock.domain.errors import Forbidden
from omnistock.domain.roles import (
    Principal,
    Role,
    may_see_reservation,
    require_admin,
    require_feed,
    require_reserve,
    require_stock_write,
    require_stock_writer,
    require_stream,
)

OK, NO, HIDE = "OK", "NO", "HIDE"
ME, OTHER = "k-me", "k-other"
ROLES = (Role.ADMIN, Role.INTEGRATION, Role.STORE, Role.STOREFRONT, Role.FEED)

Check = Callable[[Principal], str]


def gate(require: Callable[[Principal], None]) -> Check:
    """A ``require_*`` right: OK, or NO when it raises Forbidden (a 403; any other error fails)."""

    def check(who: Principal) -> str:
        try:
            require(who)
        except Forbidden:
            return NO
        return OK

    return check


def sees(location: str, owner: str | None, owner_role: str | None) -> Check:
    """Whether the key may see (read, commit, release, extend) a reservation: OK or HIDE."""

    def check(who: Principal) -> str:
        return OK if may_see_reservation(who, location, owner, owner_role) is True else HIDE

    return check


def sees_own(location: str) -> Check:
    """A reservation this very key made (its owner role is the key's own role)."""

    def check(who: Principal) -> str:
        return sees(location, who.id, who.role)(who)

    return check


# fmt: off
MATRIX: list[tuple[str, Check, tuple[str, str, str, str, str]]] = [
    # right                                  check                                                admin integration store storefront feed
    ("manage keys and locations",            gate(require_admin),                                 (OK,  NO,         NO,   NO,        NO)),
    ("import stock (lines: write rules)",    gate(require_stock_writer),                          (OK,  OK,         OK,   NO,        NO)),
    ("write stock at own location",          gate(lambda w: require_stock_write(w, "here")),      (OK,  OK,         OK,   NO,        NO)),
    ("write stock at other location",        gate(lambda w: require_stock_write(w, "there")),     (OK,  OK,         NO,   NO,        NO)),
    ("reserve at own location",              gate(lambda w: require_reserve(w, "here")),          (OK,  OK,         OK,   OK,        NO)),
    ("reserve at other location",            gate(lambda w: require_reserve(w, "there")),         (OK,  OK,         NO,   OK,        NO)),
    # API.md lists no stream for store keys; the code lets them follow a filtered one (a read).
    ("stream filtered",                      gate(lambda w: require_stream(w, firehose=False)),   (OK,  OK,         OK,   OK,        OK)),
    ("stream firehose",                      gate(lambda w: require_stream(w, firehose=True)),    (OK,  OK,         NO,   NO,        OK)),
    ("read feeds",                           gate(require_feed),                                  (OK,  OK,         NO,   NO,        OK)),
    # Reservations (Roles (additions)): who may see one, by who made it and where it is.
    ("see own reservation at own location",  sees_own("here"),                                    (OK,  OK,         OK,   OK,        OK)),
    ("see own reservation at other location", sees_own("there"),                                  (OK,  OK,         OK,   OK,        OK)),
    ("see storefront's res. at own location", sees("here", OTHER, "storefront"),                  (OK,  OK,         OK,   HIDE,      HIDE)),
    ("see storefront's res. at other loc.",  sees("there", OTHER, "storefront"),                  (OK,  OK,         HIDE, HIDE,      HIDE)),
    ("see admin's res. at own location",     sees("here", OTHER, "admin"),                        (OK,  OK,         OK,   OK,        OK)),
    ("see admin's res. at other location",   sees("there", OTHER, "admin"),                       (OK,  OK,         OK,   OK,        OK)),
    ("see integration's res. at own loc.",   sees("here", OTHER, "integration"),                  (OK,  OK,         OK,   OK,        OK)),
    ("see integration's res. at other loc.", sees("there", OTHER, "integration"),                 (OK,  OK,         OK,   OK,        OK)),
    ("see store's res. at own location",     sees("here", OTHER, "store"),                        (OK,  OK,         OK,   OK,        OK)),
    ("see store's res. at other location",   sees("there", OTHER, "store"),                       (OK,  OK,         OK,   OK,        OK)),
    ("see feed's res. at own location",      sees("here", OTHER, "feed"),                         (OK,  OK,         OK,   OK,        OK)),
    ("see feed's res. at other location",    sees("there", OTHER, "feed"),                        (OK,  OK,         OK,   OK,        OK)),
    ("see pre-round-2 res. at own location", sees("here", None, None),                            (OK,  OK,         OK,   OK,        OK)),
    ("see pre-round-2 res. at other loc.",   sees("there", None, None),                           (OK,  OK,         OK,   OK,        OK)),
]
# fmt: on


def key(role: Role, key_id: str = ME, locations: frozenset[str] = frozenset({"here"})) -> Principal:
    return Principal(id=key_id, name="n", role=role, locations=locations)


def cells() -> list[object]:
    return [
        pytest.param(role, check, outcome, id=f"{role}:{right}:{outcome}")
        for right, check, row in MATRIX
        for role, outcome in zip(ROLES, row, strict=True)
    ]


@pytest.mark.parametrize(("role", "check", "outcome"), cells())
def test_role_matrix(role: Role, check: Check, outcome: str) -> None:
    assert check(key(role)) == outcome


def test_the_matrix_covers_every_role_once_per_right() -> None:
    assert set(ROLES) == set(Role)
    names = [right for right, _, _ in MATRIX]
    assert len(names) == len(set(names)) == 23


@pytest.mark.parametrize(
    ("locations", "where", "outcome"),
    [
        pytest.param(frozenset(), "here", NO, id="no-locations:nowhere"),
        pytest.param(frozenset({"a", "b"}), "a", OK, id="two-locations:first"),
        pytest.param(frozenset({"a", "b"}), "b", OK, id="two-locations:second"),
        pytest.param(frozenset({"a", "b"}), "c", NO, id="two-locations:neither"),
        pytest.param(frozenset({"a"}), "A", NO, id="case-sensitive"),
    ],
)
def test_store_key_scope_is_exactly_its_locations(
    locations: frozenset[str], where: str, outcome: str
) -> None:
    who = key(Role.STORE, locations=locations)
    assert gate(lambda w: require_stock_write(w, where))(who) == outcome
    assert gate(lambda w: require_reserve(w, where))(who) == outcome
    assert sees(where, OTHER, "storefront")(who) == (OK if outcome == OK else HIDE)
    assert gate(require_stock_writer)(who) == OK  # the import gate; lines are checked one by one


@pytest.mark.parametrize(
    ("call", "detail"),
    [
        pytest.param(
            lambda: require_admin(key(Role.STORE)),
            "role store may not manage keys or locations; admin only",
            id="admin-only",
        ),
        pytest.param(
            lambda: require_stock_write(key(Role.FEED), "here"),
            "role feed may not change stock",
            id="stock-write-role",
        ),
        pytest.param(
            lambda: require_stock_write(key(Role.STORE), "there"),
            "this store key may not change stock at location 'there'",
            id="stock-write-location",
        ),
        pytest.param(
            lambda: require_reserve(key(Role.FEED), "here"),
            "role feed may not reserve stock",
            id="reserve-role",
        ),
        pytest.param(
            lambda: require_reserve(key(Role.STORE), "there"),
            "this store key may not reserve at location 'there'",
            id="reserve-location",
        ),
        pytest.param(
            lambda: require_stream(key(Role.STOREFRONT), firehose=True),
            "an unfiltered subscription needs an admin, integration or feed key",
            id="firehose",
        ),
        pytest.param(
            lambda: require_feed(key(Role.STOREFRONT)),
            "role storefront may not read feeds",
            id="feed",
        ),
    ],
)
def test_forbidden_says_why(call: Callable[[], None], detail: str) -> None:
    with pytest.raises(Forbidden) as err:
        call()
    assert err.value.detail == detail
    assert err.value.status == 403
