"""Many app instances on one cluster (issue 14 item 4): 2 real ``omnistock serve --no-worker``
processes and 2 real ``omnistock worker`` processes on the shared 3-primary cluster and one
Postgres, under concurrent load spread over both serving processes (reservations of a hot sku at
locations on every node with short TTLs, commits, releases, receipts, sourcing holds over three
nodes, transfers; every write with an Idempotency-Key, sent again to the other instance when a
kill cuts it), with one worker and one serving process SIGKILLed mid-run. Afterwards:

- the stream: every WebSocket subscriber of every instance (by location and by group) saw only
  real versions, in order per connection, and the final state of every position (a live client
  may be sent only the latest state of a position whose changes came faster than they left:
  API.md, stream/connection.py); a subscription resuming with ``since`` = a cursor taken before
  the run gets every change, on each instance: the exact set of (sku, location, version) the
  ledger holds;
- persistence exactly once: the ledger has each version of each position exactly once, 1..final,
  each row's totals its predecessor's plus its deltas, and ends where Redis and ``positions`` are;
  the killed worker's unacked entries were taken over by the other;
- writes exactly once: the reservations, commits, releases and receipts are exactly the
  acknowledged ones, those resent after the kill included;
- expiry exactly once: each expired reservation has one expiry row per line, and per
  reservation and sku the ledger's reserved deltas sum to what it still holds (0 once ended);
  each position's reserved equals the sum over its active reservations;
- couriers exactly once: every hold and transfer left between its steps (and every one made
  through HTTP) is finished, with one reserve per part and one move per side in the ledger;
- no oversell: 0 <= reserved <= on_hand in every ledger row and at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import random
import re
import signal
import subprocess
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from omnistock.domain.ids import partition_of
from omnistock.domain.sourcing_holds import FINISHED, decode_hold
from omnistock.domain.transfers import StoredTransfer, decode_transfer
from omnistock.embedded import EmbeddedPostgres, free_port
from omnistock.postgres.migrate import migrate
from omnistock.redis import keys
from omnistock.redis.client import ClusterClient
from omnistock.redis.cluster import ClusterMultiplexer
from omnistock.redis.scripts import OK, Scripts
from omnistock.redis.store import StockStore
from omnistock.redis.streams import GROUP, backlog
from tests.cluster.servers import LocalCluster
from tests.conftest import TEST_PG_SETTINGS, private_dir
from tests.e2e.conftest import ADMIN_KEY, SUITE_RATE_LIMITS
from tests.integration.conftest import PARTITIONS
from tests.integration.test_sourcing_crash import OMNISTOCK, new_record, part
from tests.integration.test_transfer_crash import first_step_only

AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
HOT_STOCK = 40  # per hot location: runs out under the buyers, so 409s happen
LOAD_SECONDS = 7.0
KILL_WORKER_AT = 1.5  # seconds into the load
KILL_SERVE_AT = 3.5
BUYERS = 16
INTERRUPTED = 8  # holds and transfers left between their steps, per batch (three batches)
SHORT_TTL = 1  # seconds: most reservations left alone expire during the run


@pytest.fixture(scope="module")
async def fleet_db() -> AsyncIterator[tuple[EmbeddedPostgres, asyncpg.Pool]]:
    """One Postgres of the fleet's own (the shared cluster has no app's Postgres behind it)."""
    with private_dir("omnistock-fleet-") as base:
        postgres = EmbeddedPostgres(base / "postgres", settings=TEST_PG_SETTINGS)
        postgres.start()
        try:
            pool = await asyncpg.create_pool(postgres.url, min_size=1, max_size=5)
            assert pool is not None
            async with pool.acquire() as conn:
                await migrate(conn)
            yield postgres, pool
            await pool.close()
        finally:
            postgres.stop()


class Fleet:
    """The processes: ``serve`` by name (a, b) and ``worker`` by name (w1, w2)."""

    def __init__(self, cluster: LocalCluster, postgres: EmbeddedPostgres, logs: Path) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("OMNISTOCK_")}
        self.env.update(
            OMNISTOCK_REDIS_URL=cluster.url,
            OMNISTOCK_DATABASE_URL=postgres.url,
            OMNISTOCK_ADMIN_KEY=ADMIN_KEY,
            OMNISTOCK_PARTITIONS=str(PARTITIONS),
            OMNISTOCK_RATE_LIMITS=SUITE_RATE_LIMITS,
            OMNISTOCK_LOG_LEVEL="warning",
            OMNISTOCK_SWEEPER_INTERVAL_SECONDS="0.1",
            # A dead worker's unacked entries are taken over after 1 s idle (default 5 s).
            OMNISTOCK_PERSISTER_CLAIM_IDLE_MS="1000",
            OMNISTOCK_HEARTBEAT_SECONDS="1",
        )
        self.logs = logs
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.urls: dict[str, str] = {}

    def _spawn(self, name: str, args: list[str]) -> None:
        with open(self.logs / f"{name}.log", "ab") as sink:
            self.procs[name] = subprocess.Popen(
                [OMNISTOCK, *args], env=self.env, stdout=sink, stderr=subprocess.STDOUT
            )

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")[-3000:]

    def serve(self, name: str) -> None:
        """Start ``omnistock serve --no-worker`` as ``name`` on a port of its own."""
        port = free_port()
        self.urls[name] = f"http://127.0.0.1:{port}"
        self._spawn(name, ["serve", "--no-worker", "--port", str(port)])

    async def start(self) -> None:
        # One serving process first: it migrates and readies Redis; then the rest at once.
        self.serve("a")
        await self.healthy("a")
        self.serve("b")
        for name in ("w1", "w2"):
            self._spawn(name, ["worker"])
        await self.healthy("b")
        # Both workers at work (they report to Redis; a serving process's /metrics counts them).
        deadline = time.monotonic() + 90
        async with httpx.AsyncClient(base_url=self.urls["a"], timeout=5) as probe:
            while True:
                for name in ("w1", "w2"):
                    assert self.alive(name), self.log(name)
                text = (await probe.get("/metrics")).text
                if re.search(r"^omnistock_workers_alive 2$", text, re.M):
                    return
                assert time.monotonic() < deadline, text[-2000:]
                await asyncio.sleep(0.2)

    async def healthy(self, name: str) -> None:
        deadline = time.monotonic() + 90
        async with httpx.AsyncClient(timeout=2) as probe:
            while True:
                proc = self.procs[name]
                assert proc.poll() is None, self.log(name)
                with contextlib.suppress(httpx.TransportError):
                    if (await probe.get(f"{self.urls[name]}/healthz")).status_code == 200:
                        return
                assert time.monotonic() < deadline, self.log(name)
                await asyncio.sleep(0.2)

    def kill(self, name: str) -> None:
        """SIGKILL, as a crash would."""
        proc = self.procs[name]
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)

    def alive(self, name: str) -> bool:
        return self.procs[name].poll() is None

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


@contextlib.contextmanager
def fleet_of(cluster: LocalCluster, postgres: EmbeddedPostgres, logs: Path) -> Iterator[Fleet]:
    fleet = Fleet(cluster, postgres, logs)
    try:
        yield fleet
    finally:
        fleet.stop()


async def on_every_node(redis: ClusterClient, prefix: str) -> list[str]:
    """One location id per primary (its partition's slot served there), in node order."""
    found: dict[str, str] = {}
    n = 0
    nodes = {node.name for node in redis.get_primaries()}
    while len(found) < len(nodes):
        loc = f"{prefix}-{n}"
        node = redis.get_node_from_key(keys.stream(partition_of(loc, PARTITIONS)))
        assert node is not None
        found.setdefault(node.name, loc)
        n += 1
    return [found[name] for name in sorted(found)]


class Subscriber:
    """A WebSocket client of one instance following every change at ``covers`` (subscribed by
    location, or by ``group``: the instance must learn the group of locations made through
    another); moves to another instance with ``since`` = its last cursor when its own dies."""

    def __init__(self, name: str, covers: list[str], group: str | None = None) -> None:
        self.name = name
        self.covers = set(covers)
        self.where = {"groups": [group]} if group else {"locations": covers}
        self.segments: list[list[tuple[str, str, int]]] = []  # changes per connection, in order
        self.cursor: str | None = None
        self.first_cursor: str | None = None
        self.ready = asyncio.Event()

    @property
    def seen(self) -> set[tuple[str, str, int]]:
        return {change for segment in self.segments for change in segment}

    def latest(self) -> dict[tuple[str, str], int]:
        top: dict[tuple[str, str], int] = {}
        for sku, loc, version in self.seen:
            top[(loc, sku)] = max(top.get((loc, sku), 0), version)
        return top

    async def follow(self, urls: list[str]) -> None:
        """Follow ``urls[0]``; on its loss, the next with ``since`` (until cancelled, or no
        instance is left: then what it saw tells)."""
        for url in urls:
            ws_url = url.replace("http://", "ws://") + "/v1/stream"
            try:
                async with connect(ws_url, additional_headers=AUTH, max_size=None) as ws:
                    op: dict[str, Any] = {"op": "subscribe", "id": self.name, **self.where}
                    if self.cursor is not None:
                        op["since"] = self.cursor
                    await ws.send(json.dumps(op))
                    segment: list[tuple[str, str, int]] = []
                    self.segments.append(segment)
                    async for raw in ws:
                        msg = json.loads(raw)
                        assert msg["type"] in ("subscribed", "change", "heartbeat"), msg
                        if msg["type"] == "change":
                            segment.append((msg["sku"], msg["location"], msg["version"]))
                        self.cursor = msg.get("cursor", self.cursor)
                        if msg["type"] == "subscribed":
                            self.first_cursor = self.first_cursor or msg["cursor"]
                            self.ready.set()
            except (ConnectionClosed, OSError):
                continue


class Load:
    """The clients: buyers on the hot sku, restocking, sourcing holds and transfers, spread over
    the serving processes. Every write carries an ``Idempotency-Key``; one cut by a killed
    instance is sent again with the same key to a live one (so every effect has an answer)."""

    def __init__(self, fleet: Fleet, hot: list[str], sites: list[str], group: str,
                 src: str, dst: list[str]) -> None:  # fmt: skip
        self.fleet = fleet
        self.hot, self.sites, self.group, self.src, self.dst = hot, sites, group, src, dst
        self.clients = {
            name: httpx.AsyncClient(base_url=url, headers=AUTH, timeout=30)
            for name, url in fleet.urls.items()
        }
        self.answers: Counter[tuple[str, int]] = Counter()
        self.reservations: set[str] = set()  # acknowledged
        self.committed: set[str] = set()
        self.released: set[str] = set()
        self.receipts: set[str] = set()  # idempotency keys of acknowledged adjustments
        self.holds: set[str] = set()
        self.transfers: set[str] = set()
        self.resent = 0  # writes cut by a killed instance, sent again with their key
        self.stopping = False
        self._keys = itertools.count()

    async def aclose(self) -> None:
        for client in self.clients.values():
            await client.aclose()

    async def call(
        self, n: int, what: str, path: str, body: Any = None
    ) -> tuple[httpx.Response, str]:
        """POST on client ``n``'s instance (a live one), again with the same key where it is
        cut; the answer and the key."""
        key = f"{what}-{n}-{next(self._keys)}"
        names = list(self.clients)
        for _ in range(50):
            name = names[n % len(names)]
            if not self.fleet.alive(name):
                name = next(x for x in names if self.fleet.alive(x))
            try:
                resp = await self.clients[name].post(
                    path, json=body, headers={"Idempotency-Key": key}
                )
            except httpx.TransportError:
                self.resent += 1
                await asyncio.sleep(0.1)
                continue
            if resp.status_code == 503 and what == "hold":
                # A replay of a hold its killed driver left unfinished waits for the courier.
                await asyncio.sleep(0.2)
                continue
            self.answers[(what, resp.status_code)] += 1
            return resp, key
        raise AssertionError(f"{what} {key}: no answer")

    async def buyer(self, n: int) -> None:
        rng = random.Random(n)
        while not self.stopping:
            loc = rng.choice(self.hot)
            lines = [{"sku": "hot", "qty": rng.randint(1, 3)}]
            if rng.random() < 0.3:
                lines.append({"sku": "warm", "qty": 1})
            ttl = SHORT_TTL if rng.random() < 0.5 else 60
            body = {"location": loc, "lines": lines, "ttl_seconds": ttl}
            resp, _ = await self.call(n, "reserve", "/v1/reservations", body)
            if resp.status_code != 201:
                await asyncio.sleep(0.02)
                continue
            rid = resp.json()["id"]
            self.reservations.add(rid)
            roll = rng.random()
            if roll < 0.35:
                resp, _ = await self.call(n + 1, "commit", f"/v1/reservations/{rid}/commit", {})
                if resp.status_code == 200:
                    self.committed.add(rid)
            elif roll < 0.6:
                resp, _ = await self.call(n + 1, "release", f"/v1/reservations/{rid}/release")
                if resp.status_code == 200:
                    self.released.add(rid)
            # else: left to expire (short TTL) or to stay active

    async def restocker(self, n: int) -> None:
        rng = random.Random(1000 + n)
        while not self.stopping:
            items = [{"sku": rng.choice(("hot", "warm")), "location": rng.choice(self.hot),
                      "delta": rng.randint(1, 4), "reason": "receipt"}]  # fmt: skip
            resp, key = await self.call(n, "adjust", "/v1/adjustments", {"adjustments": items})
            if resp.status_code == 200:
                self.receipts.add(key)
            await asyncio.sleep(0.1)

    async def sourcer(self, n: int) -> None:
        while not self.stopping:
            body = {"lines": [{"sku": s, "qty": 1} for s in ("x", "y", "z")],
                    "fulfillment": "ship", "group": self.group, "ttl_seconds": 600}  # fmt: skip
            resp, _ = await self.call(n, "hold", "/v1/sourcing/reservations", body)
            if resp.status_code == 201:
                self.holds.add(resp.json()["id"])
            await asyncio.sleep(0.05)

    async def mover(self, n: int) -> None:
        while not self.stopping:
            body = {"from": self.src, "to": self.dst[n % 2], "lines": [{"sku": "x", "qty": 2}]}
            resp, _ = await self.call(n, "transfer", "/v1/transfers", body)
            if resp.status_code == 201:
                self.transfers.add(resp.json()["id"])
            await asyncio.sleep(0.05)


async def put(client: httpx.AsyncClient, loc: str, stock: dict[str, int], **extra: Any) -> None:
    body = {"name": loc, "kind": "warehouse", **extra}
    resp = await client.put(f"/v1/locations/{loc}", json=body)
    assert resp.status_code in (200, 201), resp.text
    if stock:
        items = [{"sku": s, "location": loc, "delta": q, "reason": "receipt"}
                 for s, q in stock.items()]  # fmt: skip
        resp = await client.post("/v1/adjustments", json={"adjustments": items})
        assert resp.status_code == 200, resp.text


async def interrupted(store: StockStore, sites: list[str], src: str, dst: str) -> list[str]:
    """``INTERRUPTED`` holds and as many transfers left between their steps, as a process
    killed there leaves them: their ids, hold and transfer in turn."""
    pairs = await asyncio.gather(
        *(_interrupted(store, sites, src, dst) for _ in range(INTERRUPTED))
    )
    return [op for pair in pairs for op in pair]


async def _interrupted(store: StockStore, sites: list[str], src: str, dst: str) -> list[str]:
    parts = [part(store, sites[0], x=1), part(store, sites[1], y=1), part(store, sites[2], z=1)]
    record = new_record(store, parts)
    await store.begin_hold(store.partition(sites[0]), record, None)
    assert (await store.hold_part(record, parts[0])).code == OK
    transfer = await first_step_only(store, src, dst, 1)
    return [record.id, transfer.id]


async def wait_for(what: str, check: Any, within: float) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.1)


async def test_n_serve_m_worker_processes_keep_every_invariant_through_kills(
    cluster: LocalCluster,
    redis: ClusterClient,
    hot: ClusterMultiplexer,
    fleet_db: tuple[EmbeddedPostgres, asyncpg.Pool],
    uid: str,
    tmp_path: Path,
) -> None:
    postgres, db = fleet_db
    await redis.initialize()
    hot_locs = await on_every_node(redis, f"{uid}-h")
    sites = await on_every_node(redis, f"{uid}-s")
    src, dst1, dst2 = await on_every_node(redis, f"{uid}-t")
    mine = [*hot_locs, *sites, src, dst1, dst2]
    store = StockStore(redis, hot, Scripts.load(), partitions=PARTITIONS,
                       idempotency_ttl_seconds=3600, retention_seconds=3600)  # fmt: skip

    with fleet_of(cluster, postgres, tmp_path) as fleet:
        await fleet.start()
        # A subscriber before anything happens: its first cursor is where the replay starts.
        origin = Subscriber("origin", mine)
        subscribers = [
            sub
            for name in ("a", "b")
            for sub in (Subscriber(f"{name}0", mine), Subscriber(f"{name}1", sites, group=uid))
        ]
        follows = [asyncio.create_task(origin.follow([fleet.urls["a"]]))]
        for sub in subscribers:
            mine_first = fleet.urls[sub.name[0]]
            others = [u for u in fleet.urls.values() if u != mine_first]
            follows.append(asyncio.create_task(sub.follow([mine_first, *others])))
        for sub in (origin, *subscribers):
            await asyncio.wait_for(sub.ready.wait(), 30)

        load = Load(fleet, hot_locs, sites, uid, src, [dst1, dst2])
        try:
            admin = load.clients["a"]
            for loc in hot_locs:
                await put(admin, loc, {"hot": HOT_STOCK, "warm": 20})
            for n, (loc, sku) in enumerate(zip(sites, ("x", "y", "z"), strict=True)):
                await put(admin, loc, {sku: 400}, ship_from=True, groups=[uid], priority=n + 1)
            await put(admin, src, {"x": 5000})
            await put(admin, dst1, {})
            await put(admin, dst2, {})

            left = await interrupted(store, sites, src, dst1)
            tasks = [asyncio.create_task(load.buyer(n)) for n in range(BUYERS)]
            tasks += [asyncio.create_task(load.restocker(n)) for n in range(2)]
            tasks += [asyncio.create_task(load.sourcer(n)) for n in range(2)]
            tasks += [asyncio.create_task(load.mover(n)) for n in range(2)]
            load_start = time.monotonic()
            await asyncio.sleep(KILL_WORKER_AT)
            # A batch for both workers' couriers to race over, and w1 killed amid it.
            left += await interrupted(store, sites, src, dst2)
            await asyncio.sleep(0.1)
            fleet.kill("w1")  # the persister, sweeper and couriers of w2 carry on
            left += await interrupted(store, sites, src, dst2)
            await asyncio.sleep(KILL_SERVE_AT - KILL_WORKER_AT)
            fleet.kill("b")  # its clients and subscribers move to a
            left += await interrupted(store, sites, src, dst1)
            before_end = sum(n for (what, _), n in load.answers.items() if what == "reserve")
            await asyncio.sleep(max(0.0, LOAD_SECONDS - (time.monotonic() - load_start)))
            load.stopping = True
            await asyncio.gather(*tasks)
            fleet.serve("b")  # b again, on a new port, while the rest settles
            after_kill = sum(n for (what, _), n in load.answers.items() if what == "reserve")
        finally:
            load.stopping = True
            await load.aclose()

        # The rest carried on: a answered after b died; no request met a 5xx.
        assert after_kill > before_end, load.answers
        statuses = {status for _, status in load.answers}
        assert statuses <= {200, 201, 409}, load.answers
        assert load.answers[("reserve", 409)] > 0, "the hot sku never ran out"
        assert load.answers[("reserve", 201)] > 0 and load.holds and load.transfers, load.answers
        assert fleet.alive("a") and fleet.alive("w2"), fleet.log("w2")
        async with httpx.AsyncClient(base_url=fleet.urls["a"], timeout=10) as probe:
            resp = await probe.get("/readyz")  # w2 reports, so a is ready without w1
            assert resp.status_code == 200, resp.text

        # Everything settles on the surviving worker: expiry, couriers, persistence.
        async def all_due_expired() -> bool:
            return not await store.due_reservations()

        await asyncio.sleep(SHORT_TTL)
        await wait_for("reservations still due", all_due_expired, 20)

        async def holds_done() -> bool:
            holds = await holds_at(redis, set(sites))
            return bool(holds) and all(status in FINISHED for status in holds.values())

        await wait_for("holds unfinished", holds_done, 20)

        async def transfers_done() -> bool:
            return all(not r.pending for r in (await all_records_of(redis, src)).values())

        await wait_for("transfers unfinished", transfers_done, 20)

        async def drained() -> bool:
            return await backlog(redis, PARTITIONS) == 0

        await wait_for("the persister backlog did not drain", drained, 30)
        # Both workers persisted; what the killed one was given but never acked, the other took.
        consumers = await group_consumers(redis, fleet.procs["w1"].pid)
        assert any(c["inactive"] >= 0 for c in consumers), consumers
        assert sum(c["pending"] for c in consumers) == 0, consumers

        # The state to compare with: Redis positions (through the surviving instance).
        async with httpx.AsyncClient(base_url=fleet.urls["a"], headers=AUTH, timeout=30) as a:
            rows = await ledger_of(db, mine)
            positions = {(r["location"], r["sku"]) for r in rows}
            final: dict[tuple[str, str], dict[str, Any]] = {}
            for loc, sku in sorted(positions):
                resp = await a.get(f"/v1/stock/{loc}/{sku}")
                assert resp.status_code == 200, resp.text
                final[(loc, sku)] = resp.json()

            # The stream: every subscriber of every instance saw real versions in order and
            # the final version of every position; a replay from the first cursor is exact.
            versions = {(r["sku"], r["location"], r["version"]) for r in rows}
            want = {(loc, sku): body["version"] for (loc, sku), body in final.items()}

            async def caught_up() -> bool:
                return all(
                    sub.latest() == {k: v for k, v in want.items() if k[0] in sub.covers}
                    for sub in subscribers
                )

            await wait_for("a subscriber missed a final state", caught_up, 20)
            for sub in (origin, *subscribers):
                assert sub.seen <= versions, (sub.name, sorted(sub.seen - versions)[:5])
                for segment in sub.segments:
                    last: dict[tuple[str, str], int] = {}
                    for sku, loc, version in segment:
                        assert version > last.get((loc, sku), 0), (sub.name, loc, sku, version)
                        last[(loc, sku)] = version
            assert [len(sub.segments) for sub in subscribers] == [1, 1, 2, 2], "b's did not move"
            # On every instance, the one restarted after its kill too.
            await fleet.healthy("b")
            for name in ("a", "b"):
                replayed = await replay(fleet.urls[name], mine, origin.first_cursor, want)
                assert replayed == versions, name

        for task in follows:
            task.cancel()
        await asyncio.gather(*follows, return_exceptions=True)

        # Persistence exactly once, and no oversell in any row.
        by_position: dict[tuple[str, str], list[asyncpg.Record]] = defaultdict(list)
        for r in rows:
            by_position[(r["location"], r["sku"])].append(r)
        for (loc, sku), history in by_position.items():
            history.sort(key=lambda r: r["version"])
            assert [r["version"] for r in history] == list(range(1, len(history) + 1)), (loc, sku)
            on_hand = reserved = incoming = 0
            for r in history:
                on_hand += r["delta_on_hand"]
                reserved += r["delta_reserved"]
                incoming += r["delta_incoming"]
                assert (r["on_hand"], r["reserved"], r["incoming"]) == (
                    on_hand,
                    reserved,
                    incoming,
                ), (loc, sku, r)
                assert 0 <= r["reserved"] <= r["on_hand"], (loc, sku, dict(r))
            body = final[(loc, sku)]
            assert (body["on_hand"], body["reserved"], body["version"]) == (
                on_hand,
                reserved,
                len(history),
            ), (loc, sku)
        stored = await db.fetch(
            "SELECT location, sku, on_hand, reserved, version FROM positions"
            " WHERE location = ANY($1)",
            mine,
        )
        assert {(r["location"], r["sku"]): (r["on_hand"], r["reserved"], r["version"])
                for r in stored} == {
            key: (b["on_hand"], b["reserved"], b["version"]) for key, b in final.items()
        }  # fmt: skip

        # Expiry exactly once, and every reservation's units returned once: per reservation
        # and sku, the ledger's reserved deltas sum to what it holds now.
        by_reservation: dict[str, list[asyncpg.Record]] = defaultdict(list)
        for r in rows:
            if r["reservation_id"]:
                by_reservation[r["reservation_id"]].append(r)
        # Every write took effect exactly once, those resent after the kill too: the buyers'
        # reservations, commits, releases and receipts in Redis and the ledger are exactly the
        # acknowledged ones.
        at_hot = {rid for rid, h in by_reservation.items() if h[0]["location"] in hot_locs}
        assert at_hot == load.reservations
        keyed = {r["idempotency_key"] for r in rows
                 if r["reason"] == "receipt" and r["idempotency_key"]}  # fmt: skip
        assert keyed == load.receipts
        active: Counter[tuple[str, str]] = Counter()
        expired = 0
        for rid, history in by_reservation.items():
            doc = await store.get_reservation(rid)
            assert doc is not None, rid
            held = {sku: h for sku, _qty, h, _ in doc.lines} if doc.status == "active" else {}
            for sku in {r["sku"] for r in history}:
                mine_rows = [r for r in history if r["sku"] == sku]
                assert sum(r["delta_reserved"] for r in mine_rows) == held.get(sku, 0), (rid, sku)
                expiries = sum(1 for r in mine_rows if r["reason"] == "expire")
                assert expiries == (1 if doc.status == "expired" else 0), (rid, sku, doc.status)
                active[(doc.location, sku)] += held.get(sku, 0)
            expired += doc.status == "expired"
            if rid in at_hot:
                assert (doc.status == "committed") == (rid in load.committed), rid
                assert (doc.status == "released") == (rid in load.released), rid
        assert expired > 0, "no reservation expired during the run"
        for key, body in final.items():
            assert body["reserved"] == active[key], key

        # Couriers exactly once: every hold finished (those a killed serve cut too), its parts
        # held once (or undone once).
        holds = await holds_at(redis, set(sites))
        assert set(holds) == set(left[0::2]) | load.holds
        for hold_id in holds:
            record = await store.get_hold(hold_id)
            assert record is not None and record.status in FINISHED, hold_id
            for pt in record.parts:
                doc = await store.get_reservation(pt.reservation)
                if record.status == "held":
                    assert doc is not None and doc.status == "active", (hold_id, pt.reservation)
                else:
                    assert doc is None or doc.status != "active", (hold_id, pt.reservation)
                reserves = [r for r in by_reservation.get(pt.reservation, [])
                            if r["delta_reserved"] > 0]  # fmt: skip
                assert len(reserves) <= 1, (hold_id, pt.reservation)
        # ... and every transfer: one move out at `from`, one incoming at `to`, per line.
        records = await all_records_of(redis, src)
        assert set(records) == set(left[1::2]) | load.transfers
        moves: Counter[tuple[str, str, str]] = Counter(
            (r["ref"], r["location"], r["reason"])
            for r in rows
            if r["reason"].startswith("transfer")
        )
        sent = 0
        for tid, moved in records.items():
            assert not moved.pending, tid
            assert moves[(tid, src, "transfer_out")] == 1, tid
            assert moves[(tid, moved.to, "transfer_incoming")] == 1, tid
            sent += sum(ln.qty for ln in moved.lines)
        assert final[(src, "x")]["on_hand"] == 5000 - sent
        incoming = sum(final[(d, "x")]["incoming"] for d in (dst1, dst2) if (d, "x") in final)
        assert incoming == sent


async def holds_at(redis: ClusterClient, sites: set[str]) -> dict[str, str]:
    """Every sourcing hold record with a part at ``sites``: its status by id."""
    found: dict[str, str] = {}
    async for key in redis.scan_iter(match="os:{p*}:src:*", count=1000):
        raw = await redis.hget(key, "doc")
        if raw is not None:
            record = decode_hold(raw)
            if any(pt.location in sites for pt in record.parts):
                found[record.id] = record.status
    return found


async def group_consumers(redis: ClusterClient, pid: int) -> list[dict[str, Any]]:
    """The persister group's consumers of process ``pid``, over every partition stream."""
    found = []
    for p in range(PARTITIONS):
        for consumer in await redis.xinfo_consumers(keys.stream(p), GROUP):
            name = consumer["name"]
            name = name.decode() if isinstance(name, bytes) else name
            if name.split("-")[-2] == str(pid):
                found.append(consumer)
    return found


async def all_records_of(redis: ClusterClient, src: str) -> dict[str, StoredTransfer]:
    """Every transfer record from ``src`` in Redis, by id."""
    found = {}
    async for key in redis.scan_iter(match=keys.TRANSFER_PATTERN, count=1000):
        raw = await redis.hget(key, "doc")
        if raw is not None:
            record = decode_transfer(raw)
            if record.from_ == src:
                found[record.id] = record
    return found


async def ledger_of(db: asyncpg.Pool, locations: list[str]) -> list[asyncpg.Record]:
    return list(
        await db.fetch(
            "SELECT location, sku, version, reason, ref, reservation_id, idempotency_key,"
            " delta_on_hand,"
            " delta_reserved, delta_incoming, on_hand, reserved, incoming FROM ledger"
            " WHERE location = ANY($1)",
            locations,
        )
    )


async def replay(
    url: str, locations: list[str], since: str | None, want: dict[tuple[str, str], int]
) -> set[tuple[str, str, int]]:
    """Every change a subscription resuming from ``since`` is sent, until the final versions."""
    assert since is not None
    seen: set[tuple[str, str, int]] = set()
    top: dict[tuple[str, str], int] = {}
    ws_url = url.replace("http://", "ws://") + "/v1/stream"
    async with connect(ws_url, additional_headers=AUTH, max_size=None) as ws, asyncio.timeout(30):
        op = {"op": "subscribe", "id": "replay", "locations": locations, "since": since}
        await ws.send(json.dumps(op))
        while top != want:
            msg = json.loads(await ws.recv())
            assert msg["type"] in ("subscribed", "change", "heartbeat"), msg
            if msg["type"] == "change":
                seen.add((msg["sku"], msg["location"], msg["version"]))
                key = (msg["location"], msg["sku"])
                top[key] = max(top.get(key, 0), msg["version"])
    return seen
