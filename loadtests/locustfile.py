"""A retailer's omnichannel traffic against a running omnistock (loopback servers only).

    locust -f loadtests/locustfile.py --headless -u 200 -r 50 -t 60s \\
        --host http://127.0.0.1:8000 --html test-artifacts/locust.html

Storefront listing pages (batch availability), product pages (nearby stores), carts (reserve, then
commit, release or abandon to expiry, with Idempotency-Keys), store tills (sales), the ERP
(receipts and cycle counts) and WebSocket followers of a few stores. It sets itself up: an admin key
from OMNISTOCK_BENCH_KEY (or OMNISTOCK_ADMIN_KEY, else ``omnistock keys create`` on the stores the
OMNISTOCK_* environment names), one key per role made with it (deleted at the end), locations from
GET /v1/locations and skus from the local-inventory feed. OMNISTOCK_LOAD_GROUP limits the run to the
locations of one group; OMNISTOCK_LOAD_CART_TTL (seconds, default 30) is the carts' hold time.
docs/loadtests.md has the details.
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
import random
import secrets
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any
from urllib.parse import urlparse

import requests
from locust import FastHttpUser, User, between, events, task
from locust.env import Environment
from locust.runners import MasterRunner
from websocket import WebSocket, WebSocketException, WebSocketTimeoutException, create_connection

LISTING_SKUS = 24  # a category page of 24 products ...
LISTING_STORES = 5  # ... with pickup availability at the shopper's 5 nearest stores
MAX_RUN_SECONDS = 600  # a run without -t stops by itself after this
CART_TTL = int(os.environ.get("OMNISTOCK_LOAD_CART_TTL", "30"))
TALLY: Counter[str] = Counter()  # business outcomes, printed with the summary


@dataclass(frozen=True)
class Place:
    id: str
    kind: str
    lat: float | None
    lon: float | None


@dataclass
class World:
    """What the users act on, discovered once per run from the API."""

    url: str
    admin: str
    admin_made: str | None = None  # the name of the admin key this run created
    keys: dict[str, str] = field(default_factory=dict)  # role -> secret
    made: list[str] = field(default_factory=list)  # ids of the keys this run created
    places: list[Place] = field(default_factory=list)
    skus: list[str] = field(default_factory=list)  # sorted, so neighbours are a category
    stocked: dict[str, list[str]] = field(default_factory=dict)  # location -> skus on hand there
    nearest: dict[str, list[str]] = field(default_factory=dict)  # shop -> itself + nearest shops

    @cached_property
    def shops(self) -> list[Place]:
        """Where tills ring and shoppers pick up (every place, when all are warehouses)."""
        return [p for p in self.places if p.kind != "warehouse"] or self.places

    @cached_property
    def warehouses(self) -> list[Place]:
        return [p for p in self.places if p.kind == "warehouse"]

    @cached_property
    def located(self) -> list[Place]:
        return [p for p in self.places if p.lat is not None and p.lon is not None]


WORLD: World | None = None


def world() -> World:
    assert WORLD is not None, "test_start did not set the run up"
    return WORLD


def loopback(url: str) -> bool:
    host = urlparse(url).hostname or ""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def km(a: Place, b: Place) -> float:
    """Great-circle distance (both have coordinates)."""
    assert a.lat is not None and a.lon is not None and b.lat is not None and b.lon is not None
    p1, p2 = math.radians(a.lat), math.radians(b.lat)
    dp, dl = p2 - p1, math.radians(b.lon - a.lon)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 12742 * math.asin(math.sqrt(h))


def admin_key() -> tuple[str, str | None]:
    """OMNISTOCK_BENCH_KEY, the bootstrap OMNISTOCK_ADMIN_KEY, or a new key from the CLI (then
    also its name, to delete it at the end)."""
    for name in ("OMNISTOCK_BENCH_KEY", "OMNISTOCK_ADMIN_KEY"):
        if os.environ.get(name):
            return os.environ[name], None
    name = f"locust-admin-{secrets.token_hex(3)}"
    made = subprocess.run(
        ["omnistock", "keys", "create", "--role", "admin", name],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if made.returncode != 0:
        raise RuntimeError(f"set OMNISTOCK_BENCH_KEY: `omnistock keys create` said {made.stderr}")
    return made.stdout.strip().splitlines()[-1], name


def discover(url: str) -> World:
    """Keys per role, locations and stocked skus (optionally of one group)."""
    secret, made_admin = admin_key()
    found = World(url=url, admin=secret, admin_made=made_admin)
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {found.admin}"
    group = os.environ.get("OMNISTOCK_LOAD_GROUP")
    query = {"group": group} if group else {}
    resp = http.get(f"{url}/v1/locations", params=query, timeout=30)
    resp.raise_for_status()
    found.places = [
        Place(i["id"], i["kind"], i.get("lat"), i.get("lon")) for i in resp.json()["items"]
    ]
    feed = http.get(f"{url}/v1/feeds/local-inventory", params=query, timeout=60)
    feed.raise_for_status()
    skus: set[str] = set()
    for row in feed.text.splitlines()[1:]:
        loc, sku, qty, _ = row.split("\t")
        skus.add(sku)
        if int(qty) > 0:
            found.stocked.setdefault(loc, []).append(sku)
    found.skus = sorted(skus)
    found.places = [p for p in found.places if p.id in found.stocked]
    if not found.places:
        raise RuntimeError("no location has stock: load some (./scripts/serve --demo does)")
    pickup = [p for p in found.shops if p in found.located]
    for p in pickup:
        found.nearest[p.id] = [q.id for q in sorted(pickup, key=lambda q: km(p, q))]
    stores = [p.id for p in found.shops]
    for role, locations in (("storefront", []), ("store", stores), ("integration", [])):
        body = {"name": f"locust-{role}", "role": role, "locations": locations}
        made = http.post(f"{url}/v1/keys", json=body, timeout=30)
        made.raise_for_status()
        found.keys[role] = made.json()["key"]
        found.made.append(made.json()["id"])
    return found


def prepare(environment: Environment) -> None:
    """Discover the world for the host under test (again only if the host changed)."""
    global WORLD
    url = (environment.host or "").rstrip("/")
    if not loopback(url):
        raise RuntimeError(f"refusing to load-test {url!r}: only loopback servers (127.0.0.1)")
    if isinstance(environment.runner, MasterRunner) or (WORLD is not None and WORLD.url == url):
        return  # a master only coordinates: its workers set up for themselves
    WORLD = discover(url)


def on_init(environment: Environment, **_: Any) -> None:
    # An exception here stops locust before any user starts (a clear message, exit code 1).
    parsed = environment.parsed_options
    if parsed is not None and parsed.headless and not parsed.run_time:
        parsed.run_time = MAX_RUN_SECONDS  # a headless run always ends by itself
    if environment.host:
        prepare(environment)


def on_test_start(environment: Environment, **_: Any) -> None:
    prepare(environment)  # the web UI may name the host only now


def on_test_stop(**_: Any) -> None:
    print("omnistock outcomes:", ", ".join(f"{k}={v}" for k, v in sorted(TALLY.items())))


def on_quitting(**_: Any) -> None:
    """Delete the keys this run made (its own admin key last)."""
    if WORLD is None:
        return
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {WORLD.admin}"
    if WORLD.admin_made:
        listed = http.get(f"{WORLD.url}/v1/keys", timeout=30).json()["items"]
        WORLD.made += [k["id"] for k in listed if k["name"] == WORLD.admin_made]
    for key_id in WORLD.made:
        http.delete(f"{WORLD.url}/v1/keys/{key_id}", timeout=30)
    WORLD.made.clear()


events.init.add_listener(on_init)  # type: ignore[no-untyped-call]
events.test_start.add_listener(on_test_start)  # type: ignore[no-untyped-call]
events.test_stop.add_listener(on_test_stop)  # type: ignore[no-untyped-call]
events.quitting.add_listener(on_quitting)  # type: ignore[no-untyped-call]


class Omnistock(FastHttpUser):
    """An HTTP client with one role's key."""

    abstract = True
    role = "storefront"

    def on_start(self) -> None:
        self.auth = {"Authorization": f"Bearer {world().keys[self.role]}"}

    def headers(self, idempotency_key: str | None = None) -> dict[str, str]:
        if idempotency_key is None:
            return self.auth
        return {**self.auth, "Idempotency-Key": idempotency_key}

    def post_json(self, path: str, body: Any, name: str, idem: str | None = None) -> Any:
        """POST expecting 2xx; a failure otherwise. Returns the decoded body or None."""
        with self.client.post(
            path, json=body, headers=self.headers(idem), name=name, catch_response=True
        ) as resp:
            if resp.status_code is None or not 200 <= resp.status_code < 300:
                resp.failure(f"{resp.status_code}: {(resp.text or '')[:200]}")
                return None
            return resp.json()


class ListingPage(Omnistock):
    """A category page: 24 products, each with pickup availability at the 5 nearest stores."""

    weight = 30
    wait_time = between(0.5, 3)

    @task
    def category(self) -> None:
        w = world()
        start = random.randrange(max(1, len(w.skus) - LISTING_SKUS + 1))
        skus = w.skus[start : start + LISTING_SKUS]
        home = random.choice(w.shops)
        stores = w.nearest.get(home.id) or [p.id for p in w.shops]
        body = {"skus": skus, "locations": stores[:LISTING_STORES]}
        page = self.post_json("/v1/availability", body, "POST /v1/availability (listing)")
        if page is not None:
            TALLY["listing cells"] += len(page["items"])


class ProductPage(Omnistock):
    """A product page: availability in stores near the shopper, then the shopper's own store."""

    weight = 30
    wait_time = between(0.5, 3)

    @task
    def product(self) -> None:
        w = world()
        sku = random.choice(w.skus)
        located = w.located
        if located:
            at = random.choice(located)
            assert at.lat is not None and at.lon is not None
            near = f"{at.lat + random.uniform(-0.05, 0.05):.4f},{at.lon + random.uniform(-0.05, 0.05):.4f}"
            query = f"near={near}&radius_km={random.choice([10, 25, 50])}"
        else:
            query = f"location={random.choice(w.places).id}"
        self.client.get(
            f"/v1/availability/{sku}?{query}",
            headers=self.auth,
            name="GET /v1/availability/[sku]?near",
        )
        home = random.choice(w.shops)
        self.client.get(
            f"/v1/stock/{home.id}/{sku}", headers=self.auth, name="GET /v1/stock/[loc]/[sku]"
        )


class Cart(Omnistock):
    """A checkout: hold the cart's lines, think, then commit (60%), release (25%) or abandon it to
    expiry (15%). Now and then the client retries the hold with the same Idempotency-Key."""

    weight = 15
    wait_time = between(1, 5)

    @task
    def checkout(self) -> None:
        w = world()
        loc = random.choice(w.places).id
        skus = random.sample(w.stocked[loc], min(len(w.stocked[loc]), random.choice([1, 1, 2, 3])))
        body = {
            "location": loc,
            "lines": [{"sku": sku, "qty": 1} for sku in skus],
            "ttl_seconds": CART_TTL,
            "channel": random.choice(["web", "app"]),
            "ref": f"cart-{secrets.token_hex(6)}",
        }
        key = secrets.token_hex(12)
        rid = self.hold(body, key, "POST /v1/reservations")
        if rid is None:
            return
        if random.random() < 0.05:  # a retry after a lost response must replay, not hold twice
            again = self.hold(body, key, "POST /v1/reservations (retry)")
            if again is not None:
                TALLY["carts replayed" if again == rid else "carts replay mismatch"] += 1
        # Checkout think time, well inside the hold (locust made sleeps cooperative).
        time.sleep(random.uniform(0.2, min(3.0, CART_TTL / 2)))
        roll = random.random()
        if roll < 0.60:
            if self.post_json(
                f"/v1/reservations/{rid}/commit", {}, "POST /v1/reservations/[id]/commit", key + "c"
            ):
                TALLY["carts committed"] += 1
        elif roll < 0.85:
            if self.post_json(
                f"/v1/reservations/{rid}/release",
                None,
                "POST /v1/reservations/[id]/release",
                key + "r",
            ):
                TALLY["carts released"] += 1
        else:
            TALLY["carts abandoned"] += 1

    def hold(self, body: dict[str, Any], key: str, name: str) -> str | None:
        """The reservation id; None when short of stock (409, a normal outcome) or on failure."""
        with self.client.post(
            "/v1/reservations", json=body, headers=self.headers(key), name=name, catch_response=True
        ) as resp:
            if resp.status_code == 201:
                TALLY["carts held"] += 1
                return str(resp.json()["id"])
            if resp.status_code == 409 and resp.json().get("shortages"):
                TALLY["carts short"] += 1
                resp.success()
                return None
            resp.failure(f"{resp.status_code}: {(resp.text or '')[:200]}")
            return None


class Till(Omnistock):
    """A store's point of sale: one or two units sold per basket, recorded as adjustments."""

    weight = 8
    wait_time = between(1, 5)
    role = "store"

    @task
    def sale(self) -> None:
        w = world()
        loc = random.choice(w.shops).id
        items = [
            {"sku": sku, "location": loc, "delta": -1, "reason": "sale", "ref": f"till-{loc}"}
            for sku in random.sample(
                w.stocked[loc], min(len(w.stocked[loc]), random.choice([1, 2]))
            )
        ]
        key = secrets.token_hex(12)
        if self.post_json(
            "/v1/adjustments", {"adjustments": items}, "POST /v1/adjustments (sale)", key
        ):
            TALLY["till units sold"] += len(items)


class Erp(Omnistock):
    """The ERP/WMS: goods receipts in batches (mostly to warehouses) and cycle counts."""

    weight = 2
    wait_time = between(2, 6)
    role = "integration"

    @task(3)
    def receipt(self) -> None:
        w = world()
        loc = random.choice(w.warehouses if w.warehouses and random.random() < 0.7 else w.places).id
        asn = f"asn-{secrets.token_hex(4)}"
        items = [
            {
                "sku": sku,
                "location": loc,
                "delta": random.randint(6, 48),
                "reason": "receipt",
                "ref": asn,
            }
            for sku in random.sample(w.skus, min(len(w.skus), 25))
        ]
        if self.post_json(
            "/v1/adjustments", {"adjustments": items}, "POST /v1/adjustments (receipt)", asn
        ):
            TALLY["erp receipt lines"] += len(items)

    @task(2)
    def cycle_count(self) -> None:
        w = world()
        loc = random.choice(w.shops).id
        sku = random.choice(w.stocked[loc])
        resp = self.client.put(
            f"/v1/stock/{loc}/{sku}",
            json={"on_hand": random.randint(0, 12), "reason": "count"},
            headers=self.auth,
            name="PUT /v1/stock/[loc]/[sku] (count)",
        )
        if resp.status_code == 200:
            TALLY["erp counts"] += 1


class StreamFollower(User):
    """A store screen or app following a few stores over /v1/stream for a while, then again.
    Each change is reported to locust as a ``WS change`` request whose time is the delay from the
    change's commit (its ``ts``) to its arrival here."""

    weight = 5
    wait_time = between(0.5, 2)

    @task
    def follow(self) -> None:
        # websocket-client: plain blocking sockets that gevent makes cooperative (a client with a
        # reader thread breaks when locust kills the greenlet mid-read).
        w = world()
        url = w.url.replace("http", "ws", 1) + "/v1/stream"
        stores = random.sample(w.places, min(len(w.places), 3))
        started, phase = time.perf_counter(), "WS subscribe"
        ws: WebSocket | None = None
        try:
            ws = create_connection(
                url, header=[f"Authorization: Bearer {w.keys['storefront']}"], timeout=10
            )
            ws.send(
                json.dumps({"op": "subscribe", "id": "s1", "locations": [p.id for p in stores]})
            )
            reply = json.loads(ws.recv())
            if reply.get("type") != "subscribed":
                raise WebSocketException(f"subscribe answered {reply}")
            self.report(phase, (time.perf_counter() - started) * 1000, 0)
            started, phase = time.perf_counter(), "WS stream"  # a drop from here on
            ws.settimeout(1)
            until = time.monotonic() + random.uniform(15, 45)
            while time.monotonic() < until:
                self.receive(ws)
        except (OSError, WebSocketException) as exc:
            self.report(phase, (time.perf_counter() - started) * 1000, 0, exc)
        finally:
            if ws is not None:
                ws.close()

    def receive(self, ws: WebSocket) -> None:
        try:
            raw = ws.recv()
        except WebSocketTimeoutException:
            return
        msg = json.loads(raw)
        TALLY[f"ws {msg.get('type')}"] += 1
        if msg.get("type") == "change":
            committed = datetime.fromisoformat(msg["ts"]).timestamp()
            self.report("WS change", max(0.0, time.time() - committed) * 1000, len(raw))
        elif msg.get("type") == "error":
            self.report("WS stream", 0, len(raw), WebSocketException(msg.get("detail")))

    def report(self, name: str, ms: float, size: int, exc: Exception | None = None) -> None:
        self.environment.events.request.fire(
            request_type="WS",
            name=name,
            response_time=ms,
            response_length=size,
            exception=exc,
            context={},
        )
