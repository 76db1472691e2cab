"""Month arithmetic of the ledger partitions (UTC calendar months)."""

from __future__ import annotations

import datetime as dt

from omnistock.postgres.partitions import add_months, month_start

UTC = dt.UTC


def test_month_start_is_the_utc_month_of_the_instant() -> None:
    assert month_start(dt.datetime(2026, 11, 30, 23, 59, tzinfo=UTC)) == dt.datetime(
        2026, 11, 1, tzinfo=UTC
    )
    # 00:30 on 1 December in UTC+2 is still November in UTC.
    plus2 = dt.timezone(dt.timedelta(hours=2))
    assert month_start(dt.datetime(2026, 12, 1, 0, 30, tzinfo=plus2)) == dt.datetime(
        2026, 11, 1, tzinfo=UTC
    )


def test_add_months_crosses_years_both_ways() -> None:
    nov = dt.datetime(2026, 11, 1, tzinfo=UTC)
    assert [add_months(nov, n).strftime("%Y-%m") for n in (-11, -10, 0, 1, 2, 14)] == [
        "2025-12", "2026-01", "2026-11", "2026-12", "2027-01", "2028-01",
    ]  # fmt: skip
