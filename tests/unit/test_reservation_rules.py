"""Pure reservation rules: summing lines (and its cap), and who may see a reservation."""

from __future__ import annotations

import pytest

from omnistock.domain.errors import ValidationFailed
from omnistock.domain.reservations import MAX_LINE_QTY, sum_lines
from omnistock.domain.roles import Principal, Role, may_see_reservation


def test_sum_lines_merges_in_first_appearance_order() -> None:
    assert sum_lines([("a", 1), ("b", 2), ("a", 3)]) == [("a", 4), ("b", 2)]
    assert sum_lines([("a", MAX_LINE_QTY - 1), ("a", 1)]) == [("a", MAX_LINE_QTY)]


@pytest.mark.parametrize(
    ("lines", "field"),
    [
        ([("a", MAX_LINE_QTY), ("a", 1)], "lines[1].qty"),
        ([("a", 500_000), ("b", 1), ("a", 500_000), ("b", 2), ("a", 1)], "lines[4].qty"),
        ([("b", 1)] + [("a", 250_000)] * 5, "lines[5].qty"),
    ],
)
def test_sum_lines_past_the_cap_names_the_line_that_passes_it(
    lines: list[tuple[str, int]], field: str
) -> None:
    with pytest.raises(ValidationFailed) as err:
        sum_lines(lines)
    assert err.value.field == field
    assert err.value.status == 422


def key(role: Role, key_id: str = "k-me", locations: frozenset[str] = frozenset()) -> Principal:
    return Principal(id=key_id, name="n", role=role, locations=locations)


@pytest.mark.parametrize(
    ("who", "visible"),
    [
        (key(Role.STOREFRONT), True),  # the owner
        (key(Role.STOREFRONT, "k-other"), False),
        (key(Role.FEED, "k-other"), False),
        (key(Role.ADMIN, "k-other"), True),
        (key(Role.INTEGRATION, "k-other"), True),
        (key(Role.STORE, "k-other", frozenset({"loc"})), True),
        (key(Role.STORE, "k-other", frozenset({"elsewhere"})), False),
    ],
)
def test_a_storefront_reservation_is_visible_to(who: Principal, visible: bool) -> None:
    assert may_see_reservation(who, "loc", "k-me", "storefront") is visible
    # Reservations of other roles, and ones made before owners were recorded, are not owned.
    assert may_see_reservation(who, "loc", "k-me", "integration") is True
    assert may_see_reservation(who, "loc", None, None) is True
