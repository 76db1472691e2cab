"""Bad input on every endpoint: a 4xx problem+json naming the field, and the state unchanged.
Then a fuzz pass: many random and mutated requests per endpoint, none of which may give a 5xx."""

from __future__ import annotations

import copy
import dataclasses
import json
import random
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import assert_problem, put_location, stock
from tests.e2e.helpers import is_problem, reserve, snapshot

X129 = "x" * 129
BAD_IDS = [
    "a%20b",
    "a%2Fb",
    X129,
    "%C3%A9t%C3%A9",
    "a%00b",
    "a%2Cb",
]  # space, slash, long, é, NUL, ,
LONG_KEY = "k" * 256


@dataclasses.dataclass
class Case:
    method: str
    path: str
    body: Any = None
    raw: bytes | None = None
    status: int = 422
    field: str | None = None
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    params: Any = None

    def __str__(self) -> str:
        shown = self.raw if self.raw is not None else json.dumps(self.body)
        return f"{self.method} {self.path[:60]} {str(shown)[:80]} {self.headers or ''}"


def body_cases(
    method: str, path: str, good: dict[str, Any], fields: list[tuple[str, Any, str]]
) -> list[Case]:
    """The malformed-body cases every JSON endpoint gets, plus ``good`` with each (path, value,
    field) substituted; ``path`` is dotted (``lines.0.qty``), a value of ``...`` deletes it."""
    cases = [
        Case(method, path, raw=b"{bad", field="body"),
        Case(method, path, raw=b"", field="body"),
        Case(method, path, raw=b"[]", field="body"),
        Case(method, path, raw=b'"text"', field="body"),
        Case(method, path, raw=json.dumps(good).encode()[:-1], field="body"),  # truncated
    ]
    for where, value, name in fields:
        cases.append(Case(method, path, body=substitute(good, where, value), field=name))
    return cases


def substitute(doc: dict[str, Any], where: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    parts = where.split(".")
    target: Any = out
    for part in parts[:-1]:
        target = target[int(part)] if isinstance(target, list) else target[part]
    last: Any = int(parts[-1]) if isinstance(target, list) else parts[-1]
    if value is ...:
        del target[last]
    else:
        target[last] = value
    return out


def cases_for(loc: str, rid: str, uid: str) -> list[Case]:
    new_loc = f"/v1/locations/{uid}-new"
    good_loc = {"name": "N", "kind": "store", "lat": 41.9, "lon": -87.6, "groups": ["g"]}
    good_key = {"name": "k", "role": "store", "locations": [loc]}
    adj = {"sku": "s", "location": loc, "delta": 1, "reason": "receipt"}
    good_adj = {"adjustments": [adj]}
    good_res = {
        "location": loc,
        "lines": [{"sku": "s", "qty": 1}],
        "ttl_seconds": 60,
        "channel": "web",
    }
    good_matrix = {"skus": ["s"], "locations": [loc]}
    res = f"/v1/reservations/{rid}"
    cases: list[Case] = []

    cases += body_cases("PUT", new_loc, good_loc, [
        ("kind", ..., "kind"), ("name", ..., "name"), ("name", "", "name"), ("name", 5, "name"),
        ("kind", "shop", "kind"), ("kind", None, "kind"), ("lat", 91, "lat"), ("lon", 181, "lon"),
        ("lat", "41.9", "lat"), ("lon", ..., "lon"), ("pickup", "yes", "pickup"),
        ("groups", "g", "groups"), ("groups", ["a b"], "groups[0]"), ("groups", [""], "groups[0]"),
        ("groups", [X129], "groups[0]"), ("safety_stock", -1, "safety_stock"),
        ("safety_stock", 1.5, "safety_stock"), ("limited_threshold", -1, "limited_threshold"),
        ("timezone", "Mars/Base", "timezone"), ("timezone", "", "timezone"),
    ])  # fmt: skip
    cases += [
        Case("PUT", f"/v1/locations/{bad}", body=good_loc, field="location_id") for bad in BAD_IDS
    ]
    cases += [Case("GET", f"/v1/locations/{bad}", field="location_id") for bad in BAD_IDS]
    cases += [
        Case("GET", "/v1/locations", params={"group": "a b"}, field="group"),
        Case("GET", "/v1/locations", params={"group": ""}, field="group"),
        Case("GET", "/v1/locations", params={"near": "abc"}, field="near"),
        Case("GET", "/v1/locations", params={"near": "91,0"}, field="near"),
        Case("GET", "/v1/locations", params={"near": "1,2", "radius_km": "-5"}, field="radius_km"),
        Case("GET", "/v1/locations", params={"radius_km": "5"}, field="radius_km"),
    ]

    cases += body_cases("POST", "/v1/keys", good_key, [
        ("role", "god", "role"), ("role", ..., "role"), ("name", ..., "name"), ("name", "", "name"),
        ("name", "n" * 201, "name"), ("locations", loc, "locations"),
        ("locations", ["a b"], "locations[0]"), ("locations", ..., "locations"),
        ("locations", [], "locations"), ("locations", [f"{uid}-nowhere"], "locations[0]"),
    ])  # fmt: skip
    cases += [Case("DELETE", f"/v1/keys/{bad}", status=404) for bad in ("nope", "a%2Fb", X129)]

    stock_path = f"/v1/stock/{loc}/s"
    cases += body_cases("PUT", stock_path, {"on_hand": 5}, [
        ("on_hand", ..., "on_hand"), ("on_hand", -1, "on_hand"), ("on_hand", "5", "on_hand"),
        ("on_hand", 1.5, "on_hand"), ("on_hand", None, "on_hand"), ("on_hand", True, "on_hand"),
        ("on_hand", 10**13, "on_hand"), ("safety_stock", -1, "safety_stock"),
        ("safety_stock", "2", "safety_stock"), ("reason", "sale", "reason"),
        ("ref", "r" * 257, "ref"),
    ])  # fmt: skip
    cases += [
        Case("PUT", stock_path, body={"on_hand": 5}, headers={"If-Match": v}, field="If-Match")
        for v in ("abc", "-1", "1.5", "", '"x"')
    ]
    cases += [
        Case("PUT", f"/v1/stock/{loc}/{bad}", body={"on_hand": 5}, field="sku") for bad in BAD_IDS
    ]
    cases += [
        Case("PUT", f"/v1/stock/{bad}/s", body={"on_hand": 5}, field="location_id")
        for bad in BAD_IDS
    ]
    cases += [Case("GET", f"/v1/stock/{loc}/{bad}", field="sku") for bad in BAD_IDS]
    cases += [Case("GET", f"/v1/stock/{bad}/s", field="location_id") for bad in BAD_IDS]
    cases += [
        Case("PUT", f"/v1/stock/{uid}-nowhere/s", body={"on_hand": 5}, status=404),
        Case("GET", f"/v1/stock/{uid}-nowhere/s", status=404),
    ]

    cases += body_cases("POST", "/v1/adjustments", good_adj, [
        ("adjustments", ..., "adjustments"), ("adjustments", [], "adjustments"),
        ("adjustments", "x", "adjustments"), ("adjustments", [adj] * 1001, "adjustments"),
        ("adjustments.0", 5, "adjustments[0]"), ("adjustments.0.delta", 0, "adjustments[0].delta"),
        ("adjustments.0.delta", 10**9 + 1, "adjustments[0].delta"),
        ("adjustments.0.delta", -(10**9) - 1, "adjustments[0].delta"),
        ("adjustments.0.delta", "1", "adjustments[0].delta"),
        ("adjustments.0.delta", 1.5, "adjustments[0].delta"),
        ("adjustments.0.delta", ..., "adjustments[0].delta"),
        ("adjustments.0.reason", "stolen", "adjustments[0].reason"),
        ("adjustments.0.reason", ..., "adjustments[0].reason"),
        ("adjustments.0.sku", "a b", "adjustments[0].sku"),
        ("adjustments.0.sku", X129, "adjustments[0].sku"),
        ("adjustments.0.location", "", "adjustments[0].location"),
        ("adjustments.0.location", "a/b", "adjustments[0].location"),
        ("adjustments.0.ref", "r" * 257, "adjustments[0].ref"),
    ])  # fmt: skip
    cases += [
        Case("POST", "/v1/adjustments", field="adjustments[1].delta",
             body={"adjustments": [adj, {**adj, "delta": 0}]}),
        Case("POST", "/v1/adjustments", status=404,
             body={"adjustments": [adj, {**adj, "location": f"{uid}-nowhere"}]}),
    ]  # fmt: skip

    cases += [Case("GET", f"/v1/availability/{bad}", field="sku") for bad in BAD_IDS]
    for params, name in [
        ({"location": "a b"}, "location[0]"), ({"location": ""}, "location[0]"),
        ({"location": [loc, X129]}, "location[1]"), ({"group": "a b"}, "group"),
        ({"group": ""}, "group"), ({"near": "abc"}, "near"), ({"near": "1"}, "near"),
        ({"near": "91,0"}, "near"), ({"near": "0,181"}, "near"), ({"near": ""}, "near"),
        ({"near": "nan,nan"}, "near"), ({"near": "inf,0"}, "near"), ({"near": "1,2,3"}, "near"),
        ({"radius_km": "5"}, "radius_km"), ({"near": "1,2", "radius_km": "0"}, "radius_km"),
        ({"near": "1,2", "radius_km": "-1"}, "radius_km"),
        ({"near": "1,2", "radius_km": "abc"}, "radius_km"),
        ({"near": "1,2", "radius_km": "20001"}, "radius_km"),
    ]:  # fmt: skip
        cases.append(Case("GET", "/v1/availability/s", params=params, field=name))
    cases.append(
        Case("GET", "/v1/availability/s", params={"location": f"{uid}-nowhere"}, status=404)
    )

    cases += body_cases("POST", "/v1/availability", good_matrix, [
        ("skus", ..., "skus"), ("locations", ..., "locations"), ("skus", [], "skus"),
        ("locations", [], "locations"), ("skus", "s", "skus"), ("skus", ["a b"], "skus[0]"),
        ("locations", [loc, ""], "locations[1]"), ("skus", ["s"] * 501, "skus"),
        ("locations", [loc] * 501, "locations"),
    ])  # fmt: skip
    cases += [
        Case("POST", "/v1/availability", field="skus",  # 101 x 100 = 10,100 cells
             body={"skus": [f"s{i}" for i in range(101)], "locations": [loc] * 100}),
        Case("POST", "/v1/availability", status=404,
             body={"skus": ["s"], "locations": [loc, f"{uid}-nowhere"]}),
    ]  # fmt: skip

    line = {"sku": "s", "qty": 1}
    cases += body_cases("POST", "/v1/reservations", good_res, [
        ("location", ..., "location"), ("lines", ..., "lines"), ("location", "a b", "location"),
        ("location", "", "location"), ("location", 7, "location"), ("lines", [], "lines"),
        ("lines", "s", "lines"), ("lines", [line] * 101, "lines"), ("lines.0", "s", "lines[0]"),
        ("lines.0.qty", 0, "lines[0].qty"), ("lines.0.qty", 1_000_001, "lines[0].qty"),
        ("lines.0.qty", -1, "lines[0].qty"), ("lines.0.qty", "1", "lines[0].qty"),
        ("lines.0.qty", 1.5, "lines[0].qty"), ("lines.0.qty", None, "lines[0].qty"),
        ("lines.0.qty", ..., "lines[0].qty"), ("lines.0.sku", "a b", "lines[0].sku"),
        ("lines.0.sku", ..., "lines[0].sku"), ("ttl_seconds", 0, "ttl_seconds"),
        ("ttl_seconds", 604_801, "ttl_seconds"), ("ttl_seconds", "60", "ttl_seconds"),
        ("channel", "fax", "channel"), ("channel", 5, "channel"),
        ("allow_partial", "yes", "allow_partial"), ("ref", "r" * 257, "ref"),
    ])  # fmt: skip
    cases += [
        Case(
            "POST", "/v1/reservations", body={**good_res, "location": f"{uid}-nowhere"}, status=404
        ),
        Case("GET", f"/v1/reservations/{'r' * 65}", field="reservation_id"),
        Case("GET", "/v1/reservations/nope", status=404),
        Case("GET", "/v1/reservations/r1-a%2Fb", status=404),
        Case("GET", "/v1/reservations/r99999-aaaaaaaaaaaaaaaaaaaa", status=404),
        Case("POST", "/v1/reservations/nope/release", status=404),
    ]

    cases += body_cases("POST", f"{res}/commit", {"lines": [line]}, [
        ("lines", [], "lines"), ("lines", "s", "lines"), ("lines.0.qty", 0, "lines[0].qty"),
        ("lines.0.qty", "1", "lines[0].qty"), ("lines.0.sku", "a b", "lines[0].sku"),
        ("lines.0.sku", "other", "lines"), ("lines.0.qty", 3, "lines"),
    ])  # fmt: skip
    cases = [
        c for c in cases if not (c.path.endswith("/commit") and c.raw == b"")
    ]  # no body: commit all
    cases += body_cases("POST", f"{res}/extend", {"ttl_seconds": 60}, [
        ("ttl_seconds", ..., "ttl_seconds"), ("ttl_seconds", 0, "ttl_seconds"),
        ("ttl_seconds", 604_801, "ttl_seconds"), ("ttl_seconds", "60", "ttl_seconds"),
        ("ttl_seconds", None, "ttl_seconds"), ("ttl_seconds", 1.5, "ttl_seconds"),
    ])  # fmt: skip

    # An Idempotency-Key of 256 characters, or an empty one, on every mutating request.
    for method, path, body in [
        ("POST", "/v1/reservations", good_res), ("POST", "/v1/adjustments", good_adj),
        ("PUT", stock_path, {"on_hand": 5}), ("POST", f"{res}/commit", None),
        ("POST", f"{res}/release", None), ("POST", f"{res}/extend", {"ttl_seconds": 60}),
    ]:  # fmt: skip
        for key in (LONG_KEY, ""):
            cases.append(
                Case(
                    method,
                    path,
                    body=body,
                    headers={"Idempotency-Key": key},
                    field="Idempotency-Key",
                )
            )
    return cases


async def send(client: httpx.AsyncClient, case: Case) -> httpx.Response:
    content: bytes | None = case.raw
    if content is None and case.body is not None:
        content = json.dumps(case.body).encode()
    headers = {"Content-Type": "application/json", **case.headers}
    return await client.request(
        case.method, case.path, content=content, headers=headers, params=case.params
    )


@pytest.fixture
async def target(admin: httpx.AsyncClient, uid: str) -> tuple[str, str]:
    """A stocked location and an active reservation of 2 units of ``s`` there."""
    await put_location(admin, uid)
    await stock(admin, uid, s=10)
    return uid, str((await reserve(admin, uid, s=2))["id"])


async def test_bad_input_is_a_problem_naming_the_field_and_changes_nothing(
    admin: httpx.AsyncClient, target: tuple[str, str], uid: str
) -> None:
    loc, rid = target
    cells = [(loc, "s"), (loc, "other")]
    before = await snapshot(admin, cells, [rid])
    wrong: list[str] = []
    for case in cases_for(loc, rid, uid):
        resp = await send(admin, case)
        if resp.status_code != case.status or not is_problem(resp):
            wrong.append(f"{case} -> {resp.status_code} {resp.text[:200]}")
        elif case.field is not None and resp.json().get("field") != case.field:
            wrong.append(f"{case} -> field {resp.json().get('field')!r}, expected {case.field!r}")
        elif await snapshot(admin, cells, [rid]) != before:
            wrong.append(f"{case} changed state")
            before = await snapshot(admin, cells, [rid])
    assert wrong == []


async def test_wrong_role_with_bad_input_is_still_refused_cleanly(
    client_for: Any, target: tuple[str, str]
) -> None:
    loc, _ = target
    feed = await client_for("feed")
    resp = await feed.post(
        "/v1/reservations", json={"location": loc, "lines": [{"sku": "s", "qty": 1}]}
    )
    assert_problem(resp, 403)
    resp = await feed.post(
        "/v1/reservations", content=b"{bad", headers={"Content-Type": "application/json"}
    )
    assert_problem(resp, 422, "body")  # the body is read before the role is


# -- fuzz -------------------------------------------------------------------------------------------

WEIRD: list[Any] = [
    None, True, False, 0, -1, 1, 2, 2**31, 2**63, -(2**63) - 1, 10**30, -(10**30), 1.5, -0.0, 1e308,
    "", "x", "a b", "é", "\u0000", "x" * 300, "1", "true", "null", [], [1], ["s"], {}, {"a": 1},
    [[[[[]]]]], {"sku": "s", "qty": 1},
]  # fmt: skip
WEIRD_IDS = ["", "a%20b", "a%2Fb", "%00", X129, "..", "%25", "a%3Fb", "%E2%82%AC", "r1-" + "a" * 20]


def mutate(rng: random.Random, doc: Any) -> Any:
    """``doc`` with one random change: a value replaced or removed, a key added, or wrapped."""
    doc = copy.deepcopy(doc)
    holders: list[tuple[Any, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                holders.append((node, k))
                walk(v)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                holders.append((node, i))
                walk(v)

    walk(doc)
    roll = rng.random()
    if not holders or roll < 0.05:
        return rng.choice(WEIRD)
    parent, key = rng.choice(holders)
    if roll < 0.2 and isinstance(parent, dict):
        del parent[key]
    elif roll < 0.3 and isinstance(parent, dict):
        parent[rng.choice(["zzz", "lines", "qty", "on_hand", ""])] = rng.choice(WEIRD)
    elif roll < 0.35 and isinstance(parent, list):
        parent.extend(copy.deepcopy(parent) * rng.randint(1, 3))
    else:
        parent[key] = rng.choice(WEIRD)
    return doc


def garbage(rng: random.Random, good: bytes) -> bytes:
    roll = rng.random()
    if roll < 0.3:
        return good[: rng.randint(0, len(good))]
    if roll < 0.6:
        data = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        return bytes(data)
    if roll < 0.8:
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 64)))
    return rng.choice([b"[" * 5000, b'{"a":' * 3000, b"\xff\xfe", b"1" * 5000, b"{}" * 100])


async def test_fuzz_never_gives_a_server_error(
    admin: httpx.AsyncClient, target: tuple[str, str], uid: str
) -> None:
    loc, rid = target
    rng = random.Random(20261123)
    res = f"/v1/reservations/{rid}"
    endpoints: list[tuple[str, str, Any]] = [
        ("PUT", f"/v1/locations/{uid}-fz", {"name": "F", "kind": "store", "lat": 1.0, "lon": 2.0,
                                           "groups": ["g"], "safety_stock": 0, "pickup": True}),
        ("POST", "/v1/keys", {"name": "fz", "role": "store", "locations": [loc]}),
        ("PUT", f"/v1/stock/{loc}/fz", {"on_hand": 5, "safety_stock": 1, "reason": "count"}),
        ("POST", "/v1/adjustments", {"adjustments": [{"sku": "fz", "location": loc, "delta": 1,
                                                       "reason": "receipt", "ref": "x"}]}),
        ("POST", "/v1/availability", {"skus": ["s", "fz"], "locations": [loc]}),
        ("POST", "/v1/reservations", {"location": loc, "lines": [{"sku": "s", "qty": 1}],
                                      "ttl_seconds": 60, "channel": "web", "allow_partial": True}),
        ("POST", f"{res}/commit", {"lines": [{"sku": "s", "qty": 1}]}),
        ("POST", f"{res}/extend", {"ttl_seconds": 60}),
        ("POST", f"{res}/release", None),
    ]  # fmt: skip
    failures: list[str] = []

    async def check(method: str, path: str, **kw: Any) -> None:
        resp = await admin.request(method, path, **kw)
        if resp.status_code >= 500 or (resp.status_code >= 400 and not is_problem(resp)):
            failures.append(f"{method} {path} {kw} -> {resp.status_code} {resp.text[:200]}")

    json_headers = {"Content-Type": "application/json"}
    for method, path, good in endpoints:
        raw_good = json.dumps(good).encode()
        for _ in range(60):
            await check(
                method, path, content=json.dumps(mutate(rng, good)).encode(), headers=json_headers
            )
        for _ in range(15):
            await check(method, path, content=garbage(rng, raw_good), headers=json_headers)
    for _ in range(120):
        a, b = rng.choice(WEIRD_IDS), rng.choice(WEIRD_IDS)
        path = rng.choice([f"/v1/stock/{a}/{b}", f"/v1/availability/{a}", f"/v1/locations/{a}",
                           f"/v1/reservations/{a}", f"/v1/reservations/{a}/commit", f"/v1/keys/{a}"])  # fmt: skip
        method = rng.choice(["GET", "PUT", "POST", "DELETE", "PATCH"])
        params = {
            rng.choice(["location", "group", "near", "radius_km", "limit"]): str(rng.choice(WEIRD))
        }
        headers = {
            rng.choice(["If-Match", "Idempotency-Key", "Content-Type"]): rng.choice(
                ["", "1", "*", "x" * 300]
            )
        }
        await check(
            method, path, params=params, headers=headers, content=rng.choice([b"", b"{}", b"null"])
        )
    assert failures == []


async def test_the_limits_themselves_are_accepted(
    admin: httpx.AsyncClient, target: tuple[str, str]
) -> None:
    loc, _ = target
    big = {
        "adjustments": [
            {"sku": f"b{i}", "location": loc, "delta": 1, "reason": "receipt"} for i in range(1000)
        ]
    }
    big["adjustments"][0]["delta"] = 10**9
    big["adjustments"][1]["delta"] = -(10**9)
    assert (await admin.post("/v1/adjustments", json=big)).status_code == 200
    lines = [{"sku": f"b{i}", "qty": 1} for i in range(2, 101)] + [{"sku": "b0", "qty": 1_000_000}]
    body = {"location": loc, "lines": lines, "ttl_seconds": 604_800, "ref": "r" * 256}
    resp = await admin.post("/v1/reservations", json=body)
    assert resp.status_code == 201 and len(resp.json()["lines"]) == 100
    matrix = {"skus": [f"b{i}" for i in range(500)], "locations": [loc] * 20}
    assert len((await admin.post("/v1/availability", json=matrix)).json()["items"]) == 10_000
    key = {"Idempotency-Key": "k" * 255}
    assert (
        await admin.put(f"/v1/stock/{loc}/{'s' * 128}", json={"on_hand": 1}, headers=key)
    ).status_code == 200


async def test_unknown_paths_and_methods(admin: httpx.AsyncClient) -> None:
    resp = await admin.get("/v1/nothing-here")
    assert_problem(resp, 404)
    resp = await admin.delete("/v1/reservations")
    assert_problem(resp, 405)
    assert "POST" in resp.headers["allow"]
    resp = await admin.post("/v1/adjustments", content=b"x" * (11 * 1024 * 1024))
    assert_problem(resp, 413)
