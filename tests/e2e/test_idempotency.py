"""Idempotency-Key over HTTP: replays give the first answer with no second effect, a reused key with
another body is a 422, keys are scoped per API key, and concurrent duplicates act once."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import httpx

from tests.e2e.conftest import KeyMaker, assert_problem, put_location, stock
from tests.e2e.helpers import is_problem, position, reserve, spread_ids

REPLAYED = "idempotent-replayed"


def key() -> dict[str, str]:
    return {"Idempotency-Key": "idem-" + secrets.token_hex(8)}


async def twice(
    client: httpx.AsyncClient, method: str, path: str, body: Any, headers: dict[str, str]
) -> tuple[httpx.Response, httpx.Response]:
    first = await client.request(method, path, json=body, headers=headers)
    again = await client.request(method, path, json=body, headers=headers)
    assert REPLAYED not in first.headers
    assert again.headers.get(REPLAYED) == "true", again.headers
    assert (again.status_code, again.json()) == (first.status_code, first.json())
    return first, again


async def test_reservation_create_replays_without_a_second_hold(
    admin: httpx.AsyncClient, uid: str
) -> None:
    await put_location(admin, uid)
    await stock(admin, uid, s=10)
    body = {"location": uid, "lines": [{"sku": "s", "qty": 3}]}
    first, _ = await twice(admin, "POST", "/v1/reservations", body, key())
    assert first.status_code == 201
    assert (await position(admin, uid, "s"))["reserved"] == 3


async def test_commit_release_extend_replay(admin: httpx.AsyncClient, uid: str) -> None:
    await put_location(admin, uid)
    await stock(admin, uid, s=10)
    committed = (await reserve(admin, uid, s=4))["id"]
    partial = {"lines": [{"sku": "s", "qty": 1}]}
    first, _ = await twice(admin, "POST", f"/v1/reservations/{committed}/commit", partial, key())
    assert (first.status_code, first.json()["status"]) == (200, "committed")
    assert (await position(admin, uid, "s"))[("on_hand")] == 9

    released = (await reserve(admin, uid, s=2))["id"]
    first, _ = await twice(admin, "POST", f"/v1/reservations/{released}/release", None, key())
    assert first.json()["status"] == "released"

    extended = (await reserve(admin, uid, s=2))["id"]
    headers = key()
    first, _ = await twice(
        admin, "POST", f"/v1/reservations/{extended}/extend", {"ttl_seconds": 600}, headers
    )
    await asyncio.sleep(0.01)  # a second extension would move expires_at
    again = await admin.post(
        f"/v1/reservations/{extended}/extend", json={"ttl_seconds": 600}, headers=headers
    )
    assert again.json()["expires_at"] == first.json()["expires_at"]
    assert (await admin.get(f"/v1/reservations/{extended}")).json() == first.json()
    pos = await position(admin, uid, "s")
    assert (pos["on_hand"], pos["reserved"]) == (9, 2)


async def test_adjustments_across_partitions_replay_once(
    admin: httpx.AsyncClient, uid: str
) -> None:
    locs = spread_ids(uid, 4)
    for loc in locs:
        await put_location(admin, loc)
    body = {
        "adjustments": [
            {"sku": "s", "location": loc, "delta": 5 + i, "reason": "receipt"}
            for i, loc in enumerate(locs)
        ]
        + [{"sku": "s", "location": locs[0], "delta": -1, "reason": "sale"}]
    }
    headers = key()
    first, _ = await twice(admin, "POST", "/v1/adjustments", body, headers)
    assert [r["on_hand"] for r in first.json()["results"]] == [5, 6, 7, 8, 4]
    # Still a replay after more has happened to those positions.
    await stock(admin, locs[1], s=100)
    third = await admin.post("/v1/adjustments", json=body, headers=headers)
    assert (third.headers.get(REPLAYED), third.json()) == ("true", first.json())
    assert [(await position(admin, loc, "s"))["on_hand"] for loc in locs] == [4, 106, 7, 8]


async def test_stock_put_replays_the_first_answer(admin: httpx.AsyncClient, uid: str) -> None:
    await put_location(admin, uid)
    headers = {**key(), "If-Match": "0"}
    first, _ = await twice(admin, "PUT", f"/v1/stock/{uid}/s", {"on_hand": 7}, headers)
    assert (first.json()["on_hand"], first.json()["version"]) == (7, 1)
    await stock(admin, uid, s=3)  # on_hand 10, version 2
    again = await admin.put(f"/v1/stock/{uid}/s", json={"on_hand": 7}, headers=headers)
    assert (again.status_code, again.json(), again.headers.get(REPLAYED)) == (
        200,
        first.json(),
        "true",
    )
    pos = await position(admin, uid, "s")
    assert (pos["on_hand"], pos["version"]) == (10, 2)


async def test_same_key_different_body_is_422_and_changes_nothing(
    admin: httpx.AsyncClient, uid: str
) -> None:
    await put_location(admin, uid)
    await stock(admin, uid, s=10)
    headers = key()
    body = {"location": uid, "lines": [{"sku": "s", "qty": 1}]}
    assert (await admin.post("/v1/reservations", json=body, headers=headers)).status_code == 201
    other = {"location": uid, "lines": [{"sku": "s", "qty": 2}]}
    resp = await admin.post("/v1/reservations", json=other, headers=headers)
    assert_problem(resp, 422)
    assert resp.json()["type"] == "urn:omnistock:problem:idempotency-key-reused"
    # The same key on another endpoint is another request too.
    adj = {"adjustments": [{"sku": "s", "location": uid, "delta": 1, "reason": "receipt"}]}
    resp = await admin.post("/v1/adjustments", json=adj, headers=headers)
    assert_problem(resp, 422)
    pos = await position(admin, uid, "s")
    assert (pos["on_hand"], pos["reserved"], pos["version"]) == (10, 1, 2)
    # Formatting does not make a different request: same JSON, other spacing and key order.
    raw = b'{ "lines" : [ { "qty":1, "sku":"s" } ], "location" : "%s" }' % uid.encode()
    resp = await admin.post(
        "/v1/reservations", content=raw, headers={**headers, "Content-Type": "application/json"}
    )
    assert (resp.status_code, resp.headers.get(REPLAYED)) == (201, "true")


async def test_a_409_shortage_replays_even_after_stock_arrives(
    admin: httpx.AsyncClient, uid: str
) -> None:
    await put_location(admin, uid)
    await stock(admin, uid, s=1)
    headers = key()
    body = {"location": uid, "lines": [{"sku": "s", "qty": 2}]}
    first = await admin.post("/v1/reservations", json=body, headers=headers)
    assert first.status_code == 409
    assert first.json()["shortages"] == [{"sku": "s", "requested": 2, "available": 1}]
    await stock(admin, uid, s=5)
    again = await admin.post("/v1/reservations", json=body, headers=headers)
    assert (again.status_code, again.json(), again.headers.get(REPLAYED)) == (
        409,
        first.json(),
        "true",
    )
    assert is_problem(again)
    assert (await position(admin, uid, "s"))["reserved"] == 0


async def test_keys_are_scoped_per_api_key(
    admin: httpx.AsyncClient, client_for: KeyMaker, uid: str
) -> None:
    await put_location(admin, uid)
    await stock(admin, uid, s=10)
    one, two = await client_for("storefront"), await client_for("storefront")
    headers = key()
    body = {"location": uid, "lines": [{"sku": "s", "qty": 1}]}
    a = await one.post("/v1/reservations", json=body, headers=headers)
    b = await two.post("/v1/reservations", json=body, headers=headers)
    assert (a.status_code, b.status_code) == (201, 201)
    assert REPLAYED not in b.headers and a.json()["id"] != b.json()["id"]
    # A different body under the same key from another API key is no conflict either.
    c = await client_for("integration")
    other = {"location": uid, "lines": [{"sku": "s", "qty": 3}]}
    assert (await c.post("/v1/reservations", json=other, headers=headers)).status_code == 201
    assert (await position(admin, uid, "s"))["reserved"] == 5


async def test_concurrent_duplicates_act_once(
    admin: httpx.AsyncClient, client_for: KeyMaker, uid: str
) -> None:
    await put_location(admin, uid)
    await stock(admin, uid, s=100)
    shop = await client_for("storefront")
    headers = key()
    body = {"location": uid, "lines": [{"sku": "s", "qty": 2}]}
    results = await asyncio.gather(
        *(shop.post("/v1/reservations", json=body, headers=headers) for _ in range(50))
    )
    assert {(r.status_code, r.text) for r in results} == {(201, results[0].text)}
    assert sum(r.headers.get(REPLAYED) == "true" for r in results) == 49
    assert (await position(admin, uid, "s"))["reserved"] == 2

    # The same for a multi-partition adjustment batch: each position moves once.
    locs = spread_ids(f"{uid}-adj", 3)
    for loc in locs:
        await put_location(admin, loc)
    adj = {
        "adjustments": [
            {"sku": "s", "location": loc, "delta": 7, "reason": "receipt"} for loc in locs
        ]
    }
    headers = key()
    results = await asyncio.gather(
        *(admin.post("/v1/adjustments", json=adj, headers=headers) for _ in range(50))
    )
    assert {(r.status_code, r.text) for r in results} == {(200, results[0].text)}
    assert [(await position(admin, loc, "s"))["on_hand"] for loc in locs] == [7, 7, 7]

    # And a commit raced by its own retries.
    rid = (await reserve(admin, uid, s=3))["id"]
    headers = key()
    results = await asyncio.gather(
        *(shop.post(f"/v1/reservations/{rid}/commit", headers=headers) for _ in range(50))
    )
    assert {(r.status_code, r.text) for r in results} == {(200, results[0].text)}
    pos = await position(admin, uid, "s")
    assert (pos["on_hand"], pos["reserved"]) == (97, 2)
