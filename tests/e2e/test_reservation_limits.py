"""Reservation limits over HTTP: extend may not push expires_at past created_at + 7 days (422), and
lines naming the same sku may not sum past 1,000,000 (422 naming the line that passes it)."""

from __future__ import annotations

import httpx

from omnistock.domain.clock import parse_rfc3339
from tests.e2e.conftest import assert_problem, put_location, stock
from tests.e2e.helpers import snapshot

WEEK = 7 * 24 * 3600


async def test_extend_past_created_at_plus_7_days_is_422(
    admin: httpx.AsyncClient, uid: str
) -> None:
    await put_location(admin, uid)
    await stock(admin, uid, s=5)
    body = {"location": uid, "lines": [{"sku": "s", "qty": 1}], "ttl_seconds": WEEK}
    made = (await admin.post("/v1/reservations", json=body)).json()
    ceiling = parse_rfc3339(made["created_at"]) + WEEK * 1000
    assert parse_rfc3339(made["expires_at"]) == ceiling  # the longest ttl reaches it exactly
    path = f"/v1/reservations/{made['id']}/extend"
    before = await snapshot(admin, [(uid, "s")], [made["id"]])
    # Now is past created_at: a week from now is too far.
    refused = assert_problem(await admin.post(path, json={"ttl_seconds": WEEK}), 422)
    assert refused["field"] == "ttl_seconds"
    assert parse_rfc3339(refused["latest_expires_at"]) == ceiling
    assert await snapshot(admin, [(uid, "s")], [made["id"]]) == before
    # Shorter extensions are fine, up to the ceiling.
    shorter = await admin.post(path, json={"ttl_seconds": WEEK - 60})
    assert shorter.status_code == 200, shorter.text
    assert parse_rfc3339(shorter.json()["expires_at"]) <= ceiling
    assert_problem(await admin.post(path, json={"ttl_seconds": WEEK}), 422)


async def test_summed_lines_over_a_million_are_422_naming_the_line(
    admin: httpx.AsyncClient, uid: str
) -> None:
    await put_location(admin, uid)
    await stock(admin, uid, s=3_000_000, t=10)

    def lines(*items: tuple[str, int]) -> list[dict[str, object]]:
        return [{"sku": sku, "qty": qty} for sku, qty in items]

    cases = [
        (lines(("s", 600_000), ("t", 1), ("s", 400_001)), "lines[2].qty"),
        (lines(("s", 1_000_000), ("s", 1)), "lines[1].qty"),
        (lines(*[("s", 10_001)] * 100), "lines[99].qty"),  # 99 lines fit, the 100th passes
    ]
    before = await snapshot(admin, [(uid, "s"), (uid, "t")])
    for body_lines, field in cases:
        resp = await admin.post("/v1/reservations", json={"location": uid, "lines": body_lines})
        problem = assert_problem(resp, 422, field)
        assert "over 1000000" in problem["detail"], problem
    assert await snapshot(admin, [(uid, "s"), (uid, "t")]) == before

    # Exactly a million is fine.
    resp = await admin.post(
        "/v1/reservations",
        json={"location": uid, "lines": lines(("s", 600_000), ("t", 1), ("s", 400_000))},
    )
    assert resp.status_code == 201, resp.text
    made = resp.json()
    assert made["lines"] == [
        {"sku": "s", "qty": 1_000_000, "reserved": 1_000_000},
        {"sku": "t", "qty": 1, "reserved": 1},
    ]
    # A commit's lines are summed the same way.
    held = await snapshot(admin, [(uid, "s")], [made["id"]])
    resp = await admin.post(
        f"/v1/reservations/{made['id']}/commit",
        json={"lines": lines(("s", 999_999), ("s", 2))},
    )
    assert_problem(resp, 422, "lines[1].qty")
    assert await snapshot(admin, [(uid, "s")], [made["id"]]) == held
