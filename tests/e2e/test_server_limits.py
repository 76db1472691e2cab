"""Body size limits (413 problem+json, nothing changed), security headers of the pages, and
/metrics behind ``OMNISTOCK_METRICS_KEY``."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from omnistock.api.limits import ADJUSTMENTS_BODY_BYTES, AVAILABILITY_BODY_BYTES, KEY_BODY_BYTES
from tests.conftest import Servers
from tests.e2e.conftest import (
    ADMIN_KEY,
    AppServer,
    KeyMaker,
    app_settings,
    assert_problem,
    put_location,
)

SMALL_BODY_BYTES = 64 * 1024  # max_body_bytes' default


def padded(body: dict[str, object], size: int) -> bytes:
    """``body`` as JSON of exactly ``size`` bytes (valid JSON: spaces before the last brace)."""
    raw = json.dumps(body).encode()
    assert len(raw) < size
    return raw[:-1] + b" " * (size - len(raw)) + b"}"


def chunks(raw: bytes, size: int = 65536) -> Iterator[bytes]:
    for start in range(0, len(raw), size):
        yield raw[start : start + size]


async def streamed(raw: bytes) -> AsyncIterator[bytes]:
    """The body without a Content-Length (chunked): the limit counts the bytes themselves."""
    for part in chunks(raw):
        yield part


async def test_adjustments_past_their_limit_are_413_and_change_nothing(
    admin: httpx.AsyncClient, uid: str
) -> None:
    await put_location(admin, uid)
    item = {"sku": "BIG-1", "location": uid, "delta": 5, "reason": "receipt"}
    json_type = {"Content-Type": "application/json"}
    at_limit = padded({"adjustments": [item]}, ADJUSTMENTS_BODY_BYTES)
    over = padded({"adjustments": [item]}, ADJUSTMENTS_BODY_BYTES + 1)
    for content in (over, streamed(over)):
        resp = await admin.post("/v1/adjustments", content=content, headers=json_type)
        body = assert_problem(resp, 413)
        assert body["type"] == "urn:omnistock:problem:payload-too-large"
        assert str(ADJUSTMENTS_BODY_BYTES) in body["detail"]
        assert (await admin.get(f"/v1/stock/{uid}/BIG-1")).json()["version"] == 0
    resp = await admin.post("/v1/adjustments", content=at_limit, headers=json_type)
    assert resp.status_code == 200, resp.text
    assert (await admin.get(f"/v1/stock/{uid}/BIG-1")).json()["on_hand"] == 5


async def test_the_largest_valid_adjustments_batch_fits(admin: httpx.AsyncClient, uid: str) -> None:
    """1000 items, every string at its longest, the ref escaped: well under the limit."""
    await put_location(admin, uid)
    items = [
        {
            "sku": f"S{i:05d}" + "x" * 122,
            "location": uid,
            "delta": 1_000_000_000,
            "reason": "receipt",
            "ref": "\u00e9" * 256,
        }
        for i in range(1000)
    ]
    raw = json.dumps({"adjustments": items}, ensure_ascii=True).encode()
    assert 1_000_000 < len(raw) < ADJUSTMENTS_BODY_BYTES
    resp = await admin.post(
        "/v1/adjustments", content=raw, headers={"Content-Type": "application/json"}
    )
    assert resp.status_code == 200, resp.text[:300]
    assert len(resp.json()["results"]) == 1000


async def test_every_other_body_has_its_limit(
    admin: httpx.AsyncClient, uid: str, client_for: KeyMaker
) -> None:
    await put_location(admin, uid)
    json_type = {"Content-Type": "application/json"}
    keys_before = (await admin.get("/v1/keys")).json()
    location_before = (await admin.get(f"/v1/locations/{uid}")).json()
    cases = [
        ("POST", "/v1/keys", {"name": "big", "role": "feed"}, KEY_BODY_BYTES),
        ("POST", "/v1/availability", {"skus": ["a"], "locations": [uid]}, AVAILABILITY_BODY_BYTES),
        ("PUT", f"/v1/locations/{uid}", {"name": "Renamed", "kind": "store"}, SMALL_BODY_BYTES),
        ("PUT", f"/v1/stock/{uid}/SKU-1", {"on_hand": 3}, SMALL_BODY_BYTES),
        (
            "POST",
            "/v1/reservations",
            {"location": uid, "lines": [{"sku": "SKU-1", "qty": 1}]},
            SMALL_BODY_BYTES,
        ),
    ]
    for method, path, body, limit in cases:
        resp = await admin.request(method, path, content=padded(body, limit + 1), headers=json_type)
        problem = assert_problem(resp, 413)
        assert str(limit) in problem["detail"], (path, problem)
    assert (await admin.get("/v1/keys")).json() == keys_before
    assert (await admin.get(f"/v1/locations/{uid}")).json() == location_before
    assert (await admin.get(f"/v1/stock/{uid}/SKU-1")).json()["version"] == 0
    # At the limit they are read (and answered on their merits).
    for method, path, body, limit in cases[1:3]:
        resp = await admin.request(method, path, content=padded(body, limit), headers=json_type)
        assert resp.status_code == 200, (path, resp.text[:300])


async def test_the_streamed_import_has_no_whole_body_limit(
    admin: httpx.AsyncClient, uid: str
) -> None:
    await put_location(admin, uid)
    rows = 30_000
    lines = "".join(f"{uid},S{i:06d}{'x' * 120},{i % 50}\n" for i in range(rows))
    raw = ("location,sku,on_hand\n" + lines).encode()
    assert len(raw) > ADJUSTMENTS_BODY_BYTES
    resp = await admin.post("/v1/stock:import", content=raw, headers={"Content-Type": "text/csv"})
    assert resp.status_code == 200, resp.text[:300]
    assert resp.json()["rows"] == rows


# Security headers


def csp_of(resp: httpx.Response) -> dict[str, str]:
    policy = resp.headers["content-security-policy"]
    return {d.split()[0]: d.partition(" ")[2] for d in (p.strip() for p in policy.split(";")) if d}


PAGES = ["/", "/board/board.js", "/board/board.css", "/docs", "/docs/assets/swagger-ui-bundle.js"]


async def test_pages_carry_security_headers(anon: httpx.AsyncClient) -> None:
    for path in PAGES:
        resp = await anon.get(path)
        assert resp.status_code == 200, path
        assert resp.headers["x-content-type-options"] == "nosniff", path
        assert resp.headers["x-frame-options"] == "DENY", path
        assert resp.headers["referrer-policy"] == "no-referrer", path
        csp = csp_of(resp)
        assert csp["frame-ancestors"] == "'none'", path
        assert csp["default-src"] == "'self'" and csp["object-src"] == "'none'", path
        assert "unsafe-inline" not in resp.headers["content-security-policy"], path
        assert "unsafe-eval" not in resp.headers["content-security-policy"], path
    # The docs' one inline script is allowed by its hash, and nothing else inline is.
    docs = await anon.get("/docs")
    inline = re.findall(r"<script>(.*?)</script>", docs.text, re.S)
    assert len(inline) == 1
    digest = base64.b64encode(hashlib.sha256(inline[0].encode()).digest()).decode()
    assert f"'sha256-{digest}'" in csp_of(docs)["script-src"]
    # The board has none.
    assert "<script>" not in (await anon.get("/")).text
    # API answers are not sniffed either.
    api = await anon.get("/v1/locations")
    assert api.headers["x-content-type-options"] == "nosniff"


# /metrics


@pytest.fixture
async def guarded_metrics(servers: Servers) -> AsyncIterator[AppServer]:
    server = AppServer(app_settings(servers, metrics_key="m-" + "k" * 30))
    await server.start()
    yield server
    await server.stop()


async def test_metrics_open_without_a_key(anon: httpx.AsyncClient) -> None:
    resp = await anon.get("/metrics")
    assert resp.status_code == 200
    assert "omnistock_" in resp.text


async def test_metrics_behind_the_metrics_key(
    guarded_metrics: AppServer, admin: httpx.AsyncClient
) -> None:
    created = await admin.post("/v1/keys", json={"name": "scraper", "role": "feed"})
    feed_key = created.json()["key"]
    async with httpx.AsyncClient(base_url=guarded_metrics.url, timeout=30) as http:
        assert_problem(await http.get("/metrics"), 401)
        wrong = {"Authorization": "Bearer not-the-key"}
        assert_problem(await http.get("/metrics", headers=wrong), 401)
        assert "omnistock_" not in (await http.get("/metrics", headers=wrong)).text
        feed = {"Authorization": f"Bearer {feed_key}"}
        assert_problem(await http.get("/metrics", headers=feed), 403)
        for secret in ("m-" + "k" * 30, ADMIN_KEY):
            resp = await http.get("/metrics", headers={"Authorization": f"Bearer {secret}"})
            assert resp.status_code == 200, resp.text
            assert resp.headers["content-type"].startswith("text/plain")
            assert "omnistock_" in resp.text
