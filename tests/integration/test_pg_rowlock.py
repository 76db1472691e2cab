"""The Postgres row-lock baseline (loadtests/baselines/pg_rowlock) keeps omnistock's reserve rules
under concurrency, on the session's Postgres: hammered through its store (many transactions racing
for one hot row) and served for real by its own command line over HTTP."""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import asyncpg
import httpx
import pytest
from loadtests.baselines.pg_rowlock import store

from omnistock.domain.errors import Shortage
from omnistock.domain.reservations import StoredReservation
from omnistock.embedded import free_port
from tests.conftest import Servers

KEY = "baseline-test-key"
ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "loadtests.baselines.pg_rowlock"]


@pytest.fixture(scope="module")
async def pool(servers: Servers) -> AsyncIterator[asyncpg.Pool]:
    """As many connections as the served baseline has: transactions really race."""
    made = await asyncpg.create_pool(servers.database_url, min_size=16, max_size=16)
    assert made is not None
    await store.setup(made)
    yield made
    await made.close()


@pytest.fixture(scope="module")
async def baseline(servers: Servers) -> AsyncIterator[httpx.AsyncClient]:
    """``python -m loadtests.baselines.pg_rowlock serve`` on a free port; a client with its key."""
    port = free_port()
    args = ["serve", "--database-url", servers.database_url, "--port", str(port), "--key", KEY]
    proc = await asyncio.create_subprocess_exec(*CLI, *args, cwd=ROOT)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}",
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=30,
    ) as client:
        try:
            for _ in range(300):
                assert proc.returncode is None, "the baseline exited"
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            yield client
        finally:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 30)


async def race(
    pool: asyncpg.Pool, location: str, carts: Sequence[list[tuple[str, int]]]
) -> tuple[list[StoredReservation], list[Shortage]]:
    """Every cart reserved at once, each in its own transaction; what was held, what was refused."""

    async def one(n: int, lines: list[tuple[str, int]]) -> StoredReservation | Shortage:
        try:
            return await store.reserve(
                pool,
                reservation_id=f"{location}-r{n}",
                location=location,
                lines=lines,
                ttl_seconds=900,
                channel="web",
                ref=None,
                allow_partial=False,
                actor="test",
            )
        except Shortage as exc:
            return exc

    outcomes = await asyncio.gather(*(one(n, lines) for n, lines in enumerate(carts)))
    held = [o for o in outcomes if isinstance(o, StoredReservation)]
    return held, [o for o in outcomes if isinstance(o, Shortage)]


async def test_hot_sku_never_oversells(pool: asyncpg.Pool, uid: str) -> None:
    # 505 on hand less a safety stock of 5: exactly 500 of 1,000 single-unit buyers get one.
    loc, sku = f"{uid}-store", f"{uid}-HOT"
    await store.seed(pool, loc, [sku], 505, safety_stock=5)
    held, refused = await race(pool, loc, [[(sku, 1)]] * 1000)

    assert (len(held), len(refused)) == (500, 500)
    assert all(r.lines == [(sku, 1, 1, 0)] for r in held)
    assert all(exc.extra["shortages"][0].available == 0 and exc.status == 409 for exc in refused)
    found = await store.audit(pool, loc, sku)
    assert found.consistent
    p = found.position
    assert (p.on_hand, p.reserved, p.available, p.status) == (505, 500, 0, "out_of_stock")
    assert (found.held_by_active, found.active_reservations) == (500, 500)


async def test_multi_line_all_or_nothing_under_contention(pool: asyncpg.Pool, uid: str) -> None:
    # 40 carts of one A and one B race 40 carts of one A. B (5 units) lets exactly 5 pairs through;
    # A (45) suffices for every single and those 5 pairs, so a refused pair holding any A shows.
    loc, a, b = f"{uid}-store", f"{uid}-A", f"{uid}-B"
    await store.seed(pool, loc, [a], 45)
    await store.seed(pool, loc, [b], 5)
    held, refused = await race(pool, loc, [[(a, 1), (b, 1)], [(a, 1)]] * 40)

    assert sorted(len(r.lines) for r in held) == [1] * 40 + [2] * 5
    assert len(refused) == 35
    # Refused for want of B (once every A is held, of A too).
    assert all((b, 0) in [(x.sku, x.available) for x in exc.extra["shortages"]] for exc in refused)
    for sku, reserved in ((a, 45), (b, 5)):
        found = await store.audit(pool, loc, sku)
        assert found.consistent
        assert (found.position.reserved, found.position.available) == (reserved, 0)


async def test_served_flash_sale_and_shapes(
    baseline: httpx.AsyncClient, pool: asyncpg.Pool, uid: str
) -> None:
    loc, sku = f"{uid}-store", f"{uid}-HOT"
    await store.seed(pool, loc, [sku], 60)
    body = {"location": loc, "lines": [{"sku": sku, "qty": 1}], "channel": "web"}
    limit = asyncio.Semaphore(16)  # httpx queues badly with hundreds of requests pending at once

    async def buy() -> httpx.Response:
        async with limit:
            return await baseline.post("/v1/reservations", json=body)

    answers = await asyncio.gather(*(buy() for _ in range(100)))

    assert Counter(r.status_code for r in answers) == {201: 60, 409: 40}
    held = [r.json() for r in answers if r.status_code == 201]
    assert len({r["id"] for r in held}) == 60
    assert held[0].keys() >= {"id", "location", "lines", "status", "channel", "created_at"}
    assert all(r["lines"] == [{"sku": sku, "qty": 1, "reserved": 1}] for r in held)
    assert all(r["status"] == "active" and r["channel"] == "web" for r in held)
    refused = next(r for r in answers if r.status_code == 409)
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["shortages"] == [{"sku": sku, "requested": 1, "available": 0}]
    read = await baseline.get(f"/v1/stock/{loc}/{sku}")
    assert read.status_code == 200
    assert (read.json()["reserved"], read.json()["status"]) == (60, "out_of_stock")


async def test_shortage_listing_partial_and_bad_input(
    baseline: httpx.AsyncClient, pool: asyncpg.Pool, uid: str
) -> None:
    loc, a, b, none = f"{uid}-store", f"{uid}-A", f"{uid}-B", f"{uid}-NONE"
    await store.seed(pool, loc, [a, b], 3)
    lines = [{"sku": a, "qty": 2}, {"sku": b, "qty": 5}, {"sku": none, "qty": 1}]

    refused = await baseline.post("/v1/reservations", json={"location": loc, "lines": lines})
    assert refused.status_code == 409
    assert refused.json()["shortages"] == [
        {"sku": b, "requested": 5, "available": 3},
        {"sku": none, "requested": 1, "available": 0},
    ]
    assert (await store.position(pool, loc, a)).reserved == 0

    partial = await baseline.post(
        "/v1/reservations", json={"location": loc, "lines": lines, "allow_partial": True}
    )
    assert partial.status_code == 201, partial.text
    assert [(x["sku"], x["qty"], x["reserved"]) for x in partial.json()["lines"]] == [
        (a, 2, 2),
        (b, 5, 3),
        (none, 1, 0),
    ]
    assert [(await store.position(pool, loc, s)).available for s in (a, b)] == [1, 0]

    unknown = {"location": f"{uid}-nowhere", "lines": [{"sku": a, "qty": 1}]}
    assert (await baseline.post("/v1/reservations", json=unknown)).status_code == 404
    bad = await baseline.post("/v1/reservations", json={"location": loc, "lines": [{"sku": a}]})
    assert bad.status_code == 422
    assert bad.json()["field"] == "lines[0].qty"
    anonymous = await baseline.post(
        "/v1/reservations", json=unknown, headers={"Authorization": "Bearer wrong"}
    )
    assert anonymous.status_code == 401


async def test_expiry_gives_the_stock_back(pool: asyncpg.Pool, uid: str) -> None:
    loc, sku = f"{uid}-store", f"{uid}-A"
    await store.seed(pool, loc, [sku], 4)
    held, _ = await race(pool, loc, [[(sku, 3)]])
    await pool.execute(
        "UPDATE rowlock.reservations SET expires_at = 0 WHERE id = $1", held[0].id
    )  # as if its ttl had passed
    # Expire until ours is gone (the served baseline's own sweeper may get there first).
    for _ in range(50):
        if not (await store.audit(pool, loc, sku)).active_reservations:
            break
        await store.expire_due(pool)
        await asyncio.sleep(0.05)
    status = await pool.fetchval(
        "SELECT status FROM rowlock.reservations WHERE id = $1", held[0].id
    )
    assert status == "expired"
    assert (await store.position(pool, loc, sku)).available == 4


async def test_cli_seeds_and_checks(servers: Servers, pool: asyncpg.Pool, uid: str) -> None:
    loc, sku = f"{uid}-store", f"{uid}-HOT"
    where = ["--database-url", servers.database_url, "--location", loc, "--sku", sku]

    async def run(*args: str) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            *CLI, *args, *where, cwd=ROOT, stdout=asyncio.subprocess.PIPE
        )
        out, _ = await proc.communicate()
        assert proc.returncode is not None
        return proc.returncode, out.decode()

    assert (await run("seed", "--on-hand", "10000"))[0] == 0
    code, out = await run("check")
    assert code == 0, out
    assert '"on_hand":10000' in out
    assert '"held_by_active":0' in out
    # Holds beyond what is on hand (as an oversell would leave) make check fail.
    await pool.execute(
        "UPDATE rowlock.positions SET reserved = 10001 WHERE location = $1 AND sku = $2", loc, sku
    )
    assert (await run("check"))[0] == 1
