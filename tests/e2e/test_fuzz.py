"""A fuzz of every route the app serves (taken from the app itself, so a new route is fuzzed too),
the WebSocket ``/v1/stream`` included: malformed bodies (wrong types, huge numbers, deep nesting,
invalid UTF-8, empty, truncated), odd headers (If-Match, Idempotency-Key, Content-Type,
Authorization) and odd query strings (bad numbers, repeated parameters, unicode).

Nothing may answer 5xx, every /v1 refusal is a problem+json, and nothing may change: every request
that could write is made invalid by construction (a poisoned body, an id that names nothing, a
refused header), and a snapshot of what it could touch is compared after each route's batch.
Deterministic (one seed) and bounded in time."""

from __future__ import annotations

import asyncio
import copy
import json
import random
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from litestar.routes import HTTPRoute, WebSocketRoute
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from omnistock.usecases.imports import MAX_COLUMNS, MAX_LINE_BYTES
from tests.e2e.conftest import ADMIN_KEY, AppServer, put_location, stock
from tests.e2e.helpers import is_problem, reserve, snapshot

SEED = 20261130
CASES_PER_ROUTE = 36  # per method of a /v1 route (~1,100 requests in all)
CASES_PER_OTHER_ROUTE = 6  # per method of the others (pages, docs, schema: no input to speak of)
BUDGET_SECONDS = 45.0  # past it no new random case is drawn (each route still gets its first)

# Bodies that are valid for each JSON route (method, path template); the fuzz only sends poisoned
# versions of them. ``None``: the route takes no body. Leaves whose type can be told apart: int,
# float, str, bool, list, dict.
GOOD_BODIES: dict[tuple[str, str], Callable[[str], Any]] = {
    ("PUT", "/v1/stock/{location_id:str}/{sku:str}"): lambda loc: {
        "on_hand": 5, "safety_stock": 1, "reason": "count", "ref": "x"},
    ("POST", "/v1/adjustments"): lambda loc: {"adjustments": [
        {"sku": "s", "location": loc, "delta": 1, "reason": "receipt", "ref": "x",
         "state": "unsellable"}]},
    ("POST", "/v1/moves"): lambda loc: {"moves": [
        {"sku": "s", "location": loc, "qty": 1, "to": "unsellable", "reason": "damaged",
         "ref": "x"}]},
    ("POST", "/v1/supply"): lambda loc: {
        "location": loc, "eta": "2026-12-01T09:00:00Z", "lines": [{"sku": "s", "qty": 1}],
        "ref": "x", "kind": "production"},
    ("POST", "/v1/supply/{supply_id:str}/receive"): lambda loc: {
        "lines": [{"sku": "s", "qty": 1}], "over_receipt": False},
    ("POST", "/v1/supply/{supply_id:str}/reschedule"): lambda loc: {"eta": "2026-12-01T09:00:00Z"},
    ("POST", "/v1/supply/{supply_id:str}/cancel"): lambda loc: None,
    ("POST", "/v1/transfers"): lambda loc: {
        "from": loc, "to": f"{loc}-fz", "lines": [{"sku": "s", "qty": 1}], "ref": "x",
        "eta": "2026-12-01T09:00:00Z"},
    ("POST", "/v1/transfers/{transfer_id:str}/receive"): lambda loc: {
        "lines": [{"sku": "s", "qty": 1}], "over_receipt": False},
    ("POST", "/v1/transfers/{transfer_id:str}/cancel"): lambda loc: None,
    ("POST", "/v1/availability"): lambda loc: {"skus": ["s", "fz"], "locations": [loc]},
    ("POST", "/v1/reservations"): lambda loc: {
        "location": loc, "lines": [{"sku": "s", "qty": 1}], "ttl_seconds": 60, "channel": "web",
        "ref": "x", "allow_partial": True},
    ("POST", "/v1/reservations/{reservation_id:str}/commit"): lambda loc: {
        "lines": [{"sku": "s", "qty": 1}]},
    ("POST", "/v1/reservations/{reservation_id:str}/extend"): lambda loc: {"ttl_seconds": 60},
    ("POST", "/v1/reservations/{reservation_id:str}/release"): lambda loc: None,
    ("PUT", "/v1/locations/{location_id:str}"): lambda loc: {
        "name": "F", "kind": "store", "lat": 1.5, "lon": 2.5, "groups": ["g"], "pickup": True,
        "ship_from": False, "safety_stock": 0, "limited_threshold": 2, "timezone": "UTC"},
    ("POST", "/v1/keys"): lambda loc: {"name": "fz", "role": "store", "locations": [loc]},
    ("DELETE", "/v1/keys/{key_id:str}"): lambda loc: None,
    ("POST", "/v1/sourcing/plans"): lambda loc: {
        "lines": [{"sku": "s", "qty": 1}], "fulfillment": "ship", "near": {"lat": 1.5, "lon": 2.5},
        "radius_km": 50.5, "group": "g", "locations": [loc], "channel": "web", "max_locations": 2,
        "limit": 3},
    ("POST", "/v1/sourcing/reservations"): lambda loc: {
        "lines": [{"sku": "s", "qty": 1}], "fulfillment": "ship", "near": {"lat": 1.5, "lon": 2.5},
        "radius_km": 50.5, "group": "g", "locations": [loc], "channel": "web", "max_locations": 2,
        "ttl_seconds": 60, "ref": "x", "allow_partial": True},
    ("POST", "/v1/sourcing/reservations/{hold_id:str}/release"): lambda loc: None,
}  # fmt: skip
# Routes whose body may be absent (absent is a valid request: never sent empty).
OPTIONAL_BODY = {
    ("POST", "/v1/reservations/{reservation_id:str}/commit"),
    ("POST", "/v1/supply/{supply_id:str}/receive"),
    ("POST", "/v1/transfers/{transfer_id:str}/receive"),
}
# Members of each good body that may not be left out.
REQUIRED: dict[tuple[str, str], tuple[str, ...]] = {
    ("PUT", "/v1/stock/{location_id:str}/{sku:str}"): ("on_hand",),
    ("POST", "/v1/adjustments"): ("adjustments",),
    ("POST", "/v1/availability"): ("skus", "locations"),
    ("POST", "/v1/reservations"): ("location", "lines"),
    ("POST", "/v1/reservations/{reservation_id:str}/extend"): ("ttl_seconds",),
    ("PUT", "/v1/locations/{location_id:str}"): ("name", "kind"),
    ("POST", "/v1/keys"): ("name", "role"),
    ("POST", "/v1/sourcing/plans"): ("lines", "fulfillment"),
    ("POST", "/v1/sourcing/reservations"): ("lines", "fulfillment"),
    ("POST", "/v1/moves"): ("moves",),
    ("POST", "/v1/supply"): ("location", "eta", "lines"),
    ("POST", "/v1/supply/{supply_id:str}/reschedule"): ("eta",),
    ("POST", "/v1/transfers"): ("from", "to", "lines"),
}
READS = {"GET", "HEAD", "OPTIONS"}

JUNK_IDS = [
    "", "a%20b", "a%2Fb", "%00", "x" * 129, "%25", "a%3Fb", "%E2%82%AC", "%ED%A0%80", "%FF",
    "%C2%B2", "r1-" + "a" * 20, "r99999999-aaaaaaaaaaaaaaaaaaaa", "r0-" + "A" * 20, "1" * 30,
    "..%2F..%2Fetc%2Fpasswd", "key-000000000000", "%F0%9F%98%80", "a.b:c_d-" + "e" * 100,
]  # fmt: skip
ODD_VALUES = [
    "", "-1", "0", "1.5", "1e3", "99999999999999999999", "1" * 5000, "²", "٣", "é", "nan", "inf",
    "-inf", "1,2,3", "91,0", "a b", "%", "x" * 300, "true", "null", "[]", "AAAA", "\u202e",
]  # fmt: skip
QUERY_NAMES = ["limit", "page", "before", "location", "group", "near", "radius_km", "q", "sku",
               "channel", "since", "api_key", "by", "status"]  # fmt: skip
HEADER_VARIANTS: list[tuple[str, bytes]] = [
    ("If-Match", b"\xb2"), ("If-Match", "²".encode()), ("If-Match", b"1" * 5000),
    ("If-Match", b"18446744073709551616"), ("If-Match", b""), ("If-Match", b"*"),
    ("If-Match", b'W/"x"'), ("If-Match", b'"1", "2"'), ("If-Match", b"-1"),
    ("Idempotency-Key", b""), ("Idempotency-Key", b"k" * 256), ("Idempotency-Key", b"k" * 5000),
    ("Idempotency-Key", b"\xff\xfe"), ("Idempotency-Key", b"k"), ("Idempotency-Key", b"k" * 255),
    ("Content-Type", b""), ("Content-Type", b"text/plain"), ("Content-Type", b"text/csv"),
    ("Content-Type", b"application/x-ndjson"), ("Content-Type", b"application/json; charset=x"),
    ("Content-Type", b"application/x-www-form-urlencoded"),
    ("Content-Type", b"multipart/form-data; boundary=zz"), ("Content-Type", b"\xff/\xfe"),
    ("Content-Type", b"application/json" * 40),
    ("Authorization", b"Bearer " + b"x" * 5000), ("Authorization", b"Basic YTpi"),
    ("Authorization", b"Bearer \xff\xfe"), ("Authorization", b"Bearer"), ("Authorization", b""),
    ("Accept", b"\xff"), ("Accept-Encoding", b"\xff"),
]  # fmt: skip
BIG_NUMBERS: list[Any] = [10**13, 2**63, 2**64, 10**30, -(10**30), -(2**63) - 1, 1e300]


def leaves(doc: Any, path: tuple[Any, ...] = ()) -> list[tuple[tuple[Any, ...], Any]]:
    """Every (path, value) of ``doc`` that is not a dict (lists count, and so do their items)."""
    found: list[tuple[tuple[Any, ...], Any]] = []
    if isinstance(doc, dict):
        for key, value in doc.items():
            found += leaves(value, (*path, key))
    else:
        if path:
            found.append((path, doc))
        if isinstance(doc, list):
            for i, value in enumerate(doc):
                found += leaves(value, (*path, i))
    return found


def replaced(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    out = copy.deepcopy(doc)
    target = out
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return out


def wrong_types(value: Any) -> list[Any]:
    """Values no field typed like ``value`` accepts (never null: some fields take it; never an
    int for a float field: those take ints)."""
    if isinstance(value, bool):
        return [1, "true", [True], {"a": True}]
    if isinstance(value, int):
        return [True, 1.5, "5", [5], {"n": 5}, -0.5]
    if isinstance(value, float):
        return [True, "1.5", [1.5], {"x": 1}]
    if isinstance(value, str):
        return [5, 1.5, False, [value], {"s": value}]
    if isinstance(value, list):
        return [5, "x", True, {"a": value}]
    return ["x", 5, [value]]


def deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def poison(
    rng: random.Random, good: Any, optional: bool = False, required: tuple[str, ...] = ()
) -> bytes:
    """A body no handler may accept, made from the valid ``good`` (``optional``: the route takes
    no body too, so none is never sent; ``required``: members that may be left out)."""
    encoded = json.dumps(good, separators=(",", ":")).encode()
    spots = leaves(good)
    roll = rng.randrange(9)
    if roll == 0:  # truncated: a strict prefix of an object is never JSON
        return encoded[: rng.randrange(0 if not optional else 1, len(encoded))]
    if roll == 1:  # invalid UTF-8 anywhere: in a string or between tokens, never valid
        at = rng.randrange(len(encoded) + 1)
        return (
            encoded[:at] + rng.choice([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x80"]) + encoded[at:]
        )
    if roll == 2:  # the whole body the wrong shape
        return rng.choice([b"[]", b'"text"', b"5", b"true", b"1e999", b"[{}]", deep(5000),
                           b'{"a":' * 3000, b"{}" * 50, b"\x00", b"{,}"])  # fmt: skip
    if roll == 3 and not optional:
        return rng.choice([b"", b" ", b"\n", b"null"])
    if roll == 4 and spots:  # a number out of every range the API has
        numeric = [
            (p, v) for p, v in spots if isinstance(v, int | float) and not isinstance(v, bool)
        ]
        if numeric:
            path, _ = rng.choice(numeric)
            return json.dumps(replaced(good, path, rng.choice(BIG_NUMBERS))).encode()
    if roll == 5 and spots:  # nested deeply where a value belongs
        path, _ = rng.choice(spots)
        text = json.dumps(replaced(good, path, "@@DEEP@@")).encode()
        return text.replace(b'"@@DEEP@@"', deep(rng.choice([64, 600, 5000])))
    if roll == 6 and required:  # a required member absent
        out = copy.deepcopy(good)
        del out[rng.choice(required)]
        return json.dumps(out).encode()
    if spots:  # a value of the wrong type
        path, value = rng.choice(spots)
        return json.dumps(replaced(good, path, rng.choice(wrong_types(value)))).encode()
    return b"\xff"


def bad_import(rng: random.Random, loc: str) -> tuple[bytes, bytes]:
    """(Content-Type, body) of an import in which no line may be applied."""
    if rng.random() < 0.5:
        header = rng.choice([
            b"location,sku,on_hand,safety_stock", b"location,sku,on_hand", b"sku,on_hand",
            b"\xff\xfe,sku,on_hand", b"location,sku,on_hand" + b",c" * MAX_COLUMNS, b",,,,",
            b'"location,sku,on_hand', b"location,sku,on_hand" + b"," * (MAX_LINE_BYTES + 1),
            b"", b"location;sku;on_hand",
        ])  # fmt: skip
        lines = [
            f"{loc},s,-1,", f"{loc},s,1.5,", f"{loc},s,²,", f"{loc},s,٣,", f"{loc},s,{'9' * 5000},",
            f"{loc},s,{10**12 + 1},", f"{loc},s,,", f"{loc},s,abc,", f"{loc},s,1e3,",
            f"{loc},s,0x10,", "a b,s,1,", f"{'x' * 129},s,1,", f"{loc}-nowhere,s,1,",
            f"{loc},a b,1,", f"{loc},,1,", f"{loc},é,1,", f"{loc},s", f"{loc},s,1,-1",
            f"{loc},s,1,{10**13}", f"{loc},fz,{'7' * (MAX_LINE_BYTES + 10)},",
        ]  # fmt: skip
        body = [header] + [line.encode() for line in rng.sample(lines, rng.randint(1, 6))]
        if rng.random() < 0.3:
            body.append(f"{loc},s,\xff5,".encode("latin-1"))
        content_type = rng.choice([b"text/csv", b"application/csv", b"text/csv; charset=utf-8"])
    else:
        records: list[bytes] = [
            json.dumps({"location": loc, "sku": "s", "on_hand": value}).encode()
            for value in ("5", -1, 10**13, 1.5, True, None, [5], {"n": 5}, 2**64)
        ]
        records += [
            json.dumps({"location": loc, "sku": "s"}).encode(),
            json.dumps({"location": loc, "sku": "s", "on_hand": 1, "safety_stock": -1}).encode(),
            json.dumps({"location": "a b", "sku": "s", "on_hand": 1}).encode(),
            json.dumps({"location": loc, "sku": "", "on_hand": 1}).encode(),
            b'{"location":"' + loc.encode() + b'","sku":"s","on_hand":' + b"9" * 5000 + b"}",
            deep(5000), b'{"a":' * 3000, b"\xff\xfe", b"[]", b"{", b"null", b"5",
            b'{"location":"' + loc.encode() + b'","sku":"s\xff","on_hand":1}',
            b'{"location":"' + loc.encode() + b'","sku":"fz","on_hand":"' + b"9" * MAX_LINE_BYTES + b'"}',
        ]  # fmt: skip
        body = rng.sample(records, rng.randint(1, 6))
        content_type = rng.choice([b"application/x-ndjson", b"application/jsonl"])
    if rng.random() < 0.15:
        content_type = rng.choice([b"text/plain", b"", b"application/json", b"\xff"])
    return content_type, rng.choice([b"\n", b"\r\n"]).join(body)


class Fuzz:
    def __init__(self, app: AppServer, client: httpx.AsyncClient, loc: str) -> None:
        self.app = app
        self.client = client
        self.loc = loc
        self.failures: list[str] = []
        self.sent = 0

    async def send(
        self,
        method: str,
        path: str,
        *,
        content: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
        params: list[tuple[str, str]] | None = None,
        what: str = "",
    ) -> None:
        self.sent += 1
        try:
            resp = await self.client.request(
                method, path, content=content, headers=headers, params=params
            )
        except httpx.RemoteProtocolError as exc:  # the server may drop a request it cannot parse
            if not path.startswith("/v1/stream"):
                self.failures.append(f"{method} {path[:80]} {what}: connection dropped ({exc})")
            return
        shown = f"{method} {path[:80]} {what} {str(params)[:80]} {str(headers)[:120]}"
        if resp.status_code >= 500:
            self.failures.append(f"{shown} -> {resp.status_code} {resp.text[:200]}")
        elif (
            resp.status_code >= 400
            and path.startswith("/v1/")
            and not path.startswith("/v1/stream")
            and not is_problem(resp)
        ):
            self.failures.append(f"{shown} -> {resp.status_code} not a problem: {resp.text[:100]}")


def fill(template: str, values: dict[str, str]) -> str:
    out = template
    for name, value in values.items():
        out = out.replace("{" + name + ":str}", value).replace("{" + name + ":path}", value)
    return out


def route_cases(route: Any) -> list[tuple[str, str]]:
    """(method, path template) of an HTTP route of the app."""
    return [(method, route.path) for method in sorted(route.methods)]


@pytest.fixture
async def target(admin: httpx.AsyncClient, uid: str) -> tuple[str, str, str]:
    """A stocked location, an active reservation there and a key of its own."""
    await put_location(admin, uid)
    await stock(admin, uid, s=10, t=3)
    rid = str((await reserve(admin, uid, s=2))["id"])
    resp = await admin.post("/v1/keys", json={"name": f"fz-{uid}", "role": "feed"})
    assert resp.status_code == 201
    return uid, rid, str(resp.json()["id"])


async def state(
    admin: httpx.AsyncClient, loc: str, rid: str, supply_id: str | None = None
) -> dict[str, Any]:
    """What a fuzzed request could change: the location's positions (all of them, so a new one
    shows), the reservation, every location and key, and the open supply (``supply_id``)."""
    out = await snapshot(admin, [(loc, "s"), (loc, "t"), (loc, "fz")], [rid])
    if supply_id is not None:
        out["supply"] = (await admin.get(f"/v1/supply/{supply_id}")).json()
    out["positions"] = (await admin.get(f"/v1/stock/{loc}", params={"limit": 1000})).json()
    out["positions"]["items"].sort(key=lambda p: p["sku"])
    return out


async def test_fuzz_every_route_no_5xx_and_no_state_change(
    app: AppServer, admin: httpx.AsyncClient, target: tuple[str, str, str]
) -> None:
    loc, rid, key_id = target
    rng = random.Random(SEED)
    fuzz = Fuzz(app, admin, loc)
    made = await admin.post("/v1/supply", json=GOOD_BODIES[("POST", "/v1/supply")](loc))
    assert made.status_code == 201, made.text
    sid = made.json()["id"]
    good_ids = {"location_id": loc, "sku": "s", "reservation_id": rid, "key_id": key_id,
                "file_path": "board.js", "path": "openapi.json", "supply_id": sid}  # fmt: skip
    routes = app.server.config.app.routes  # type: ignore[attr-defined]
    http_cases = [
        case for route in routes if isinstance(route, HTTPRoute) for case in route_cases(route)
    ]
    ws_routes = [route.path for route in routes if isinstance(route, WebSocketRoute)]
    assert ("POST", "/v1/stock:import") in http_cases and "/v1/stream" in ws_routes

    before = await state(admin, loc, rid, sid)
    started = time.perf_counter()
    changed: list[str] = []
    for method, template in http_cases:
        names = [part.split(":")[0].strip("{") for part in template.split("/") if "{" in part]
        writes = method not in READS
        cases = CASES_PER_ROUTE if template.startswith("/v1/") else CASES_PER_OTHER_ROUTE
        for n in range(cases):
            if n and time.perf_counter() - started > BUDGET_SECONDS:
                break
            ids = {name: good_ids.get(name, "x") for name in names}
            headers = [("Authorization", f"Bearer {ADMIN_KEY}".encode())]
            params: list[tuple[str, str]] = []
            for _ in range(rng.choice([0, 1, 1, 2, 3])):
                name = rng.choice(QUERY_NAMES)
                params += [(name, rng.choice(ODD_VALUES))] * rng.choice([1, 1, 2])
            for _ in range(rng.choice([0, 1, 1, 2])):
                odd = rng.choice(HEADER_VARIANTS)
                headers = [h for h in headers if h[0] != odd[0]] + [odd]
            content: bytes | None = None
            key = (method, template)
            if template == "/v1/stock:import":
                content_type, content = bad_import(rng, loc)
                headers = [h for h in headers if h[0] != "Content-Type"]
                headers.append(("Content-Type", content_type))
            elif writes and GOOD_BODIES.get(key, lambda _: {})(loc) is None:
                # A route without a body writes unless its ids name nothing that exists.
                ids = {name: rng.choice(JUNK_IDS) for name in names}
                content = rng.choice([None, b"", b"{}", b"\xff", b"null", deep(300)])
            elif writes and key not in GOOD_BODIES:
                # A route this test does not know (added since): ids that name nothing, and a
                # body no JSON handler takes.
                ids = {name: rng.choice(JUNK_IDS) for name in names}
                content = rng.choice([b"\xff", b"{", deep(5000), b'{"a":' * 3000])
            elif writes:
                good = GOOD_BODIES[key](loc)
                content = poison(rng, good, key in OPTIONAL_BODY, REQUIRED.get(key, ()))
                if names and rng.random() < 0.3:
                    ids[rng.choice(names)] = rng.choice(JUNK_IDS)
                if not any(h[0] == "Content-Type" for h in headers):
                    headers.append(("Content-Type", b"application/json"))
            else:
                if names and rng.random() < 0.5:
                    ids[rng.choice(names)] = rng.choice(JUNK_IDS)
                if rng.random() < 0.3:
                    content = poison(rng, {"a": 1})
            await fuzz.send(
                method, fill(template, ids), content=content, headers=headers, params=params,
                what=repr(content[:60]) if content else "",
            )  # fmt: skip
        now = await state(admin, loc, rid, sid)
        if now != before:
            changed.append(f"{method} {template}: state changed")
            before = now

    await sweep_query_parameters(fuzz, routes, good_ids)
    await fuzz_stream_handshakes(fuzz, rng)
    await fuzz_stream_messages(app, rng, fuzz)
    took = time.perf_counter() - started
    assert await state(admin, loc, rid, sid) == before
    assert not fuzz.failures, "\n".join(fuzz.failures)
    assert not changed, "\n".join(changed)
    # The snapshot does see a change (a valid write), so "unchanged" above means something.
    resp = await admin.post("/v1/adjustments", json=GOOD_BODIES[("POST", "/v1/adjustments")](loc))
    assert resp.status_code == 200 and await state(admin, loc, rid, sid) != before
    assert fuzz.sent > len(http_cases) * 10
    assert took < 60, f"the fuzz took {took:.1f}s"


def query_parameters(handler: Any, path_names: set[str]) -> list[str]:
    """The query parameters a handler declares (by the name clients send)."""
    found = []
    for name, field in handler.parsed_fn_signature.parameters.items():
        kwarg = field.kwarg_definition
        if name in path_names or name in {"request", "data", "socket", "scope"}:
            continue
        if kwarg is not None and (getattr(kwarg, "header", None) or getattr(kwarg, "cookie", None)):
            continue
        found.append(getattr(kwarg, "query", None) or name)
    return found


async def sweep_query_parameters(fuzz: Fuzz, routes: list[Any], good_ids: dict[str, str]) -> None:
    """Every query parameter a /v1 read declares, with every odd value, alone and repeated."""
    swept = 0
    for route in routes:
        if not isinstance(route, HTTPRoute) or not route.path.startswith("/v1/"):
            continue
        for handler in route.route_handlers:
            if "GET" not in handler.http_methods:
                continue
            path = fill(route.path, {n: good_ids.get(n, "x") for n in route.path_parameters})
            for name in query_parameters(handler, set(route.path_parameters)):
                for value in ODD_VALUES:
                    await fuzz.send("GET", path, params=[(name, value)])
                    swept += 1
                await fuzz.send("GET", path, params=[(name, "1"), (name, "2"), (name, "é")])
    assert swept >= 14 * len(ODD_VALUES)  # history, availability, locations, positions, feeds


async def fuzz_stream_handshakes(fuzz: Fuzz, rng: random.Random) -> None:
    """``/v1/stream`` reached over plain HTTP and through broken upgrade requests."""
    upgrade = [("Connection", b"Upgrade"), ("Upgrade", b"websocket")]
    for headers in [
        [], upgrade, [*upgrade, ("Sec-WebSocket-Version", b"99")],
        [*upgrade, ("Sec-WebSocket-Version", b"13"), ("Sec-WebSocket-Key", b"\xff" * 30)],
        [*upgrade, ("Sec-WebSocket-Version", b"13"), ("Sec-WebSocket-Key", b"")],
        [("Upgrade", b"h2c"), ("Connection", b"Upgrade")],
    ]:  # fmt: skip
        for auth in (b"Bearer " + ADMIN_KEY.encode(), b"Bearer nope", b""):
            params = [("api_key", rng.choice(ODD_VALUES))] if rng.random() < 0.5 else []
            await fuzz.send(
                rng.choice(["GET", "POST", "HEAD"]),
                "/v1/stream",
                headers=[("Authorization", auth), *headers],
                params=params,
            )


async def fuzz_stream_messages(app: AppServer, rng: random.Random, fuzz: Fuzz) -> None:
    """Refused keys get a 401 at the handshake; a connected client's malformed messages each get
    an ``error`` message and the connection stays open."""
    url = app.url.replace("http://", "ws://") + "/v1/stream"
    for key in ["", "x" * 5000, "%FF", "nope", "Bearer%20x"]:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(f"{url}?api_key={key}", open_timeout=10):
                pass
        assert refused.value.response.status_code == 401
    good = {"op": "subscribe", "id": "s1", "skus": ["s"], "locations": [fuzz.loc], "since": None}
    messages: list[str | bytes] = [
        deep(5000).decode(), '{"op":"subscribe","id":' * 3000, "\x00", "", "[]", "null", "{",
        b"\xff\xfe", b"\x80" * 10, json.dumps({**good, "since": "A" * 5000}),
        json.dumps({**good, "since": "99999999999999999999"}), json.dumps({**good, "id": 2**64}),
        json.dumps({**good, "skus": [[[]]]}), json.dumps({**good, "op": "nope"}),
        json.dumps({**good, "status_only": "yes"}), json.dumps({"op": "unsubscribe", "id": "zz"}),
        json.dumps({**good, "id": "x" * 129}), json.dumps({**good, "skus": ["a b"]}),
    ]  # fmt: skip
    raw = json.dumps(good, separators=(",", ":")).encode()
    for _ in range(12):  # (bytes go as binary frames: invalid UTF-8 stays invalid)
        messages.append(poison(rng, good, required=("op", "id")))
        messages.append(raw[: rng.randrange(1, len(raw))])
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with connect(url, additional_headers=headers, open_timeout=10) as ws:
        for message in messages:
            await ws.send(message)
            reply = await next_non_heartbeat(ws)
            if reply.get("type") != "error":
                fuzz.failures.append(f"stream {str(message)[:80]!r} -> {reply}")
        await ws.send(json.dumps({**good, "id": "ok"}))
        assert (await next_non_heartbeat(ws))["type"] == "subscribed"


async def next_non_heartbeat(ws: Any) -> dict[str, Any]:
    while True:
        msg: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if msg.get("type") != "heartbeat":
            return msg
