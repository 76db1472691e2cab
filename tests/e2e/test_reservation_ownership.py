"""Reservation ownership (API.md "Roles (additions)"): a reservation a storefront key created can be
read, committed, released or extended only by that key, admin and integration keys, and store keys
of its location; any other key gets the same 404 as for an id that does not exist, and nothing
changes. Also for a finished reservation only Postgres still has."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aredis

from omnistock.domain.ids import reservation_partition
from omnistock.redis import keys
from tests.e2e.conftest import KeyMaker, assert_problem, put_location, stock
from tests.e2e.helpers import PARTITIONS, position, reserve, snapshot

ACTIONS = ("get", "commit", "release", "extend")


@dataclass
class Shop:
    """``here`` (where storefront ``owner`` reserves) and ``elsewhere``, with keys of every kind."""

    admin: httpx.AsyncClient
    here: str
    elsewhere: str
    owner: httpx.AsyncClient
    allowed: dict[str, httpx.AsyncClient]  # besides the owner
    refused: dict[str, httpx.AsyncClient]


@pytest.fixture
async def shop(admin: httpx.AsyncClient, client_for: KeyMaker, uid: str) -> Shop:
    here, elsewhere = f"{uid}-here", f"{uid}-elsewhere"
    for loc in (here, elsewhere):
        await put_location(admin, loc)
        await stock(admin, loc, s=1000)
    return Shop(
        admin=admin,
        here=here,
        elsewhere=elsewhere,
        owner=await client_for("storefront", name="web-shop"),
        allowed={
            "admin": admin,
            "integration": await client_for("integration"),
            "store of its location": await client_for("store", [here]),
            "store of both locations": await client_for("store", [elsewhere, here]),
        },
        refused={
            # The same name as the owner: ownership is by key, not by name.
            "another storefront": await client_for("storefront", name="web-shop"),
            "a third storefront": await client_for("storefront"),
            "feed": await client_for("feed"),
            "store of another location": await client_for("store", [elsewhere]),
        },
    )


async def act(client: httpx.AsyncClient, action: str, rid: str) -> httpx.Response:
    if action == "get":
        return await client.get(f"/v1/reservations/{rid}")
    body = {"ttl_seconds": 1200} if action == "extend" else None
    return await client.post(f"/v1/reservations/{rid}/{action}", json=body)


async def test_other_keys_get_404_and_change_nothing(shop: Shop) -> None:
    rid = (await reserve(shop.owner, shop.here, s=2))["id"]
    unknown = rid[:-4] + ("aaaa" if not rid.endswith("aaaa") else "bbbb")
    nowhere = assert_problem(await shop.admin.get(f"/v1/reservations/{unknown}"), 404)
    before = await snapshot(shop.admin, [(shop.here, "s")], [rid])
    for who, client in shop.refused.items():
        for action in ACTIONS:
            resp = await act(client, action, rid)
            body = assert_problem(resp, 404)
            # Indistinguishable from an id that does not exist (but for the id itself).
            assert body["type"] == nowhere["type"] == "urn:omnistock:problem:not-found", who
            assert body["detail"] == nowhere["detail"].replace(unknown, rid), (who, action)
    assert await snapshot(shop.admin, [(shop.here, "s")], [rid]) == before
    # The owner still has it, untouched.
    mine = await act(shop.owner, "get", rid)
    assert (mine.status_code, mine.json()["status"]) == (200, "active")


@pytest.mark.parametrize("ending", ["commit", "release"])
async def test_owner_admin_integration_and_local_store_may_act(shop: Shop, ending: str) -> None:
    for who, client in [("owner", shop.owner), *shop.allowed.items()]:
        made = await reserve(shop.owner, shop.here, s=3)
        rid = made["id"]
        got = await act(client, "get", rid)
        assert (got.status_code, got.json()) == (200, made), who
        extended = await act(client, "extend", rid)
        assert extended.status_code == 200, (who, extended.text)
        assert extended.json()["expires_at"] > made["expires_at"], who
        ended = await act(client, ending, rid)
        assert ended.status_code == 200, (who, ended.text)
        assert ended.json()["status"] == ("committed" if ending == "commit" else "released"), who
        # Once finished it is still theirs to read, and acting again is the usual 409.
        assert (await act(client, "get", rid)).json()["status"] == ended.json()["status"], who
        assert_problem(await act(client, ending, rid), 409)
    pos = await position(shop.admin, shop.here, "s")
    taken = 3 * (1 + len(shop.allowed)) if ending == "commit" else 0
    assert (pos["on_hand"], pos["reserved"]) == (1000 - taken, 0)


async def test_reservations_of_other_roles_keep_the_role_rules(shop: Shop) -> None:
    """Only storefront keys own what they create: an integration key's reservation is open to
    every role that reserves, as before (the role matrix covers the rest)."""
    rid = (await reserve(shop.allowed["integration"], shop.here, s=1))["id"]
    other_storefront = shop.refused["another storefront"]
    assert (await act(other_storefront, "get", rid)).status_code == 200
    assert (await act(other_storefront, "commit", rid)).status_code == 200


async def persisted_status(db: asyncpg.Pool, rid: str, deadline: float = 20.0) -> str:
    """The reservation's status in Postgres once the persister has written its last change."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        status = await db.fetchval("SELECT status FROM reservations WHERE id = $1", rid)
        if status is not None and status != "active":
            return str(status)
        await asyncio.sleep(0.05)
    raise AssertionError(f"reservation {rid} not persisted as finished in {deadline}s")


async def test_ownership_holds_when_only_postgres_has_it(
    shop: Shop, db: asyncpg.Pool, app_redis: aredis.Redis
) -> None:
    rid = (await reserve(shop.owner, shop.here, s=1))["id"]
    assert (await act(shop.owner, "release", rid)).status_code == 200
    assert await persisted_status(db, rid) == "released"
    # Retention has passed: Redis forgets it, reads fall back to Postgres.
    p = reservation_partition(rid, PARTITIONS)
    assert await app_redis.delete(keys.reservation(p, rid)) == 1
    for who, client in shop.refused.items():
        for action in ACTIONS:
            refused = assert_problem(await act(client, action, rid), 404)
            assert refused["type"] == "urn:omnistock:problem:not-found", (who, action)
    for who, client in [("owner", shop.owner), *shop.allowed.items()]:
        got = await act(client, "get", rid)
        assert (got.status_code, got.json()["status"]) == (200, "released"), who
        for action in ("commit", "release", "extend"):
            refused = assert_problem(await act(client, action, rid), 409)
            assert refused["reservation_status"] == "released", (who, action)


async def test_many_keys_racing_to_commit_only_the_owner_commits_once(
    shop: Shop, client_for: KeyMaker
) -> None:
    """Twenty other storefronts, feeds and stores of another location race the owner (eight
    commits of its own) on each of ten reservations: every one is committed exactly once, by
    the owner; the others all get 404."""
    rivals = list(shop.refused.values())
    for _ in range(8):
        rivals.append(await client_for("storefront"))
    rivals += [await client_for("feed") for _ in range(4)]
    rivals += [await client_for("store", [shop.elsewhere]) for _ in range(4)]
    assert len(rivals) == 20
    rounds = 10
    rids = [(await reserve(shop.owner, shop.here, s=2))["id"] for _ in range(rounds)]

    async def commit(client: httpx.AsyncClient, rid: str) -> tuple[bool, int]:
        resp = await client.post(f"/v1/reservations/{rid}/commit")
        return client is shop.owner, resp.status_code

    calls: list[Any] = []
    for rid in rids:
        calls += [commit(c, rid) for c in rivals] + [commit(shop.owner, rid) for _ in range(8)]
    outcomes = Counter(await asyncio.gather(*calls))
    assert outcomes == {
        (True, 200): rounds,
        (True, 409): 7 * rounds,
        (False, 404): len(rivals) * rounds,
    }
    for rid in rids:
        doc = (await shop.admin.get(f"/v1/reservations/{rid}")).json()
        assert (doc["status"], doc["lines"]) == (
            "committed",
            [{"sku": "s", "qty": 2, "reserved": 2, "committed": 2}],
        )
    pos = await position(shop.admin, shop.here, "s")
    assert (pos["on_hand"], pos["reserved"]) == (1000 - 2 * rounds, 0)
