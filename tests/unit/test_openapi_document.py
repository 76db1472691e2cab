"""The OpenAPI document states what the app does (API.md, "Conventions (additions)").

schemathesis (tests/e2e/test_openapi_contract.py) checks the running app against the document;
these check the document itself, without servers: the codes every operation must list, the
codes a handler's own code can raise, the constraints the contract names, and that request
bodies are described by the very types the strict decoder enforces.
"""

from __future__ import annotations

import inspect
import itertools
import re
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from litestar import Litestar
from litestar.handlers import HTTPRouteHandler
from litestar.routes import HTTPRoute
from litestar.testing import TestClient

from omnistock.api.body import decode
from omnistock.api.openapi import EVERY_OPERATION, body_schema, document
from omnistock.api.schemas import AdjustmentsIn
from omnistock.api.stock import expected_version
from omnistock.app import create_app
from omnistock.domain.errors import ValidationFailed
from omnistock.domain.ids import IDENTIFIER_PATTERN
from omnistock.settings import load_settings

PROBLEM_REF = "#/components/schemas/Problem"


@pytest.fixture(scope="module")
def app() -> Litestar:
    # Nothing is opened: the stores are opened by the lifespan, which these tests never run.
    settings = load_settings(
        env={}, redis_url="redis://127.0.0.1:1/0", database_url="postgresql://x@127.0.0.1:1/x"
    )
    return create_app(settings)


@pytest.fixture(scope="module")
def doc(app: Litestar) -> dict[str, Any]:
    return document(app)


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if method in ("get", "put", "post", "delete", "patch"):
                yield path, method, operation


def handlers(app: Litestar) -> Iterator[tuple[str, str, HTTPRouteHandler]]:
    """(path template, method, handler) of every documented /v1 operation."""
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or not route.path.startswith("/v1"):
            continue
        for handler in route.route_handlers:
            if handler.include_in_schema:
                for method in handler.http_methods:
                    yield route.path_format, method.lower(), handler


def test_every_v1_operation_is_documented(app: Litestar, doc: dict[str, Any]) -> None:
    documented = {(path, method) for path, method, _ in operations(doc)}
    served = {(path, method) for path, method, _ in handlers(app)}
    assert served == documented
    assert len(served) >= 20


def test_every_operation_lists_the_codes_any_operation_can_answer(doc: dict[str, Any]) -> None:
    for path, method, operation in operations(doc):
        responses = operation["responses"]
        where = f"{method.upper()} {path}"
        assert {str(code) for code in EVERY_OPERATION} <= responses.keys(), where
        # Litestar's own 400 is answered as a 422 here: never documented, never sent.
        assert "400" not in responses, where
        for code, response in responses.items():
            headers = response.get("headers", {})
            assert {"RateLimit", "RateLimit-Policy"} <= headers.keys(), (where, code)
            if int(code) >= 400:
                content = response["content"]
                assert list(content) == ["application/problem+json"], (where, code)
                assert content["application/problem+json"]["schema"]["$ref"] == PROBLEM_REF
            if code in ("429", "503"):
                assert headers["Retry-After"]["required"] is True, (where, code)


def test_bodies_and_parameters_list_their_refusals(doc: dict[str, Any]) -> None:
    for path, method, operation in operations(doc):
        codes = operation["responses"].keys()
        where = f"{method.upper()} {path}"
        if "requestBody" in operation or method in ("post", "put"):
            assert {"413", "422"} <= codes, where
        if operation.get("parameters"):
            assert "422" in codes, where


# What a handler's own code can raise, by the calls that raise it.
RAISES = {
    403: re.compile(r"require_(admin|stock_writer?|reserve|feed)\("),
    404: re.compile(r"\.require\(|NotFound\(|_find(_live)?\("),
    409: re.compile(r"_find_live\(|\.reserve\(|Shortage\(|NotActive\("),
    412: re.compile(r"If-Match|if_match"),
    422: re.compile(r"ValidationFailed\(|idempotency\(|check_identifier\(|parse_near\("),
}


def test_codes_a_handler_can_raise_are_documented(app: Litestar, doc: dict[str, Any]) -> None:
    for path, method, handler in handlers(app):
        source = inspect.getsource(handler.fn)
        documented = doc["paths"][path][method]["responses"].keys()
        for code, calls in RAISES.items():
            if calls.search(source):
                assert str(code) in documented, f"{method.upper()} {path} can answer {code}"


def test_request_bodies_are_the_types_the_decoder_enforces(
    app: Litestar, doc: dict[str, Any]
) -> None:
    checked = 0
    for path, method, handler in handlers(app):
        data = handler.parsed_fn_signature.parameters.get("data")
        if data is None:
            continue
        body = doc["paths"][path][method]["requestBody"]["content"]["application/json"]
        assert body["schema"] == body_schema(data.raw).to_schema(), f"{method.upper()} {path}"
        checked += 1
    assert checked >= 8


def _schema(doc: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    content = doc["paths"][path][method]["requestBody"]["content"]
    return dict(content["application/json"]["schema"])


def _parameter(doc: dict[str, Any], path: str, method: str, name: str) -> dict[str, Any]:
    for param in doc["paths"][path][method].get("parameters", []):
        if param["name"] == name:
            return dict(param)
    raise AssertionError(f"{method.upper()} {path} has no parameter {name}")


def test_the_contracts_constraints_are_in_the_document(doc: dict[str, Any]) -> None:
    res = _schema(doc, "/v1/reservations", "post")
    assert res["properties"]["location"]["pattern"] == IDENTIFIER_PATTERN
    lines = res["properties"]["lines"]
    assert (lines["minItems"], lines["maxItems"]) == (1, 100)
    qty = lines["items"]["properties"]["qty"]
    assert (qty["type"], qty["minimum"], qty["maximum"]) == ("integer", 1, 1_000_000)
    ttl = res["properties"]["ttl_seconds"]["anyOf"][0]
    assert (ttl["type"], ttl["minimum"], ttl["maximum"]) == ("integer", 1, 604_800)

    adj = _schema(doc, "/v1/adjustments", "post")["properties"]["adjustments"]
    assert (adj["minItems"], adj["maxItems"]) == (1, 1000)
    delta = adj["items"]["properties"]["delta"]
    assert (delta["type"], delta["minimum"], delta["maximum"]) == ("integer", -(10**9), 10**9)
    assert delta["not"] == {"const": 0}

    on_hand = _schema(doc, "/v1/stock/{location_id}/{sku}", "put")["properties"]["on_hand"]
    assert (on_hand["type"], on_hand["minimum"], on_hand["maximum"]) == ("integer", 0, 10**12)

    matrix = _schema(doc, "/v1/availability", "post")["properties"]
    assert matrix["skus"]["items"]["pattern"] == IDENTIFIER_PATTERN
    assert matrix["skus"]["maxItems"] == 500

    keys = _schema(doc, "/v1/keys", "post")
    assert keys["then"] == {"required": ["locations"], "properties": {"locations": {"minItems": 1}}}
    assert keys["properties"]["locations"]["items"]["pattern"] == IDENTIFIER_PATTERN

    for path in ("/v1/stock/{location_id}/{sku}", "/v1/stock/{location_id}/{sku}/history"):
        for name in ("location_id", "sku"):
            assert _parameter(doc, path, "get", name)["schema"]["pattern"] == IDENTIFIER_PATTERN
    where = _parameter(doc, "/v1/availability/{sku}", "get", "location")["schema"]
    assert where["items"]["pattern"] == IDENTIFIER_PATTERN
    radius = _parameter(doc, "/v1/locations", "get", "radius_km")["schema"]
    assert (radius["exclusiveMinimum"], radius["maximum"]) == (0, 20_000)
    if_match = _parameter(doc, "/v1/stock/{location_id}/{sku}", "put", "If-Match")["schema"]
    assert if_match["type"] == "string" and "pattern" in if_match


IDEMPOTENT = [
    ("/v1/reservations", "post"),
    ("/v1/reservations/{reservation_id}/commit", "post"),
    ("/v1/reservations/{reservation_id}/release", "post"),
    ("/v1/reservations/{reservation_id}/extend", "post"),
    ("/v1/adjustments", "post"),
    ("/v1/stock/{location_id}/{sku}", "put"),
]


@pytest.mark.parametrize(("path", "method"), IDEMPOTENT)
def test_idempotency_key_is_documented(doc: dict[str, Any], path: str, method: str) -> None:
    schema = _parameter(doc, path, method, "Idempotency-Key")["schema"]
    # A header is a string or absent, never null.
    assert schema == {**schema, "type": "string", "minLength": 1, "maxLength": 255}
    assert "oneOf" not in schema


def test_options_allow_lists_every_method_of_the_path(app: Litestar) -> None:
    client = TestClient(app)  # no lifespan: OPTIONS needs no store
    for path, methods in [
        ("/v1/keys", "GET, OPTIONS, POST"),
        ("/v1/locations/x", "GET, OPTIONS, PUT"),
        ("/v1/stock/a/b", "GET, OPTIONS, PUT"),
    ]:
        resp = client.options(path)
        assert resp.status_code == 204
        assert resp.headers["allow"] == methods, path


def test_an_integer_may_be_spelled_with_a_zero_fraction() -> None:
    """JSON Schema (so the document) counts 10.0 as the integer 10: the decoder agrees."""
    decoder = msgspec.json.Decoder(AdjustmentsIn)
    item = b'{"sku":"s","location":"l","reason":"sale","delta":%s}'
    body = b'{"adjustments":[' + item % b"10.0" + b"]}"
    assert decode(decoder, body).adjustments[0].delta == 10
    for bad, message in [(b"10.5", "got `float`"), (b'"10"', "got `str`"), (b"2e9", "<=")]:
        with pytest.raises(ValidationFailed) as caught:
            decode(decoder, b'{"adjustments":[' + item % bad + b"]}")
        assert caught.value.field == "adjustments[0].delta"
        assert message in caught.value.detail


def test_if_match_pattern_is_what_the_handler_reads(doc: dict[str, Any]) -> None:
    """Every If-Match the document's pattern admits is read as a version (or *), every other is
    refused: checked over all short strings of the characters that matter."""
    schema = _parameter(doc, "/v1/stock/{location_id}/{sku}", "put", "If-Match")["schema"]
    pattern = re.compile(schema["pattern"])
    alphabet = '*W/"0 9²a'
    for length in range(1, 6):
        for chars in itertools.product(alphabet, repeat=length):
            value = "".join(chars)
            if value != value.strip():
                continue  # HTTP strips a header value's surrounding whitespace
            try:
                expected_version(value)
                read = True
            except ValidationFailed:
                read = False
            assert (pattern.search(value) is not None) == read, repr(value)


def test_page_pattern_is_what_the_handler_reads(doc: dict[str, Any]) -> None:
    pattern = re.compile(
        _parameter(doc, "/v1/stock/{location_id}", "get", "page")["schema"]["pattern"]
    )
    edge = 2**64 - 1
    for value in [0, 1, 10**19, edge - 1, edge, edge + 1, 10**20 - 1, 10**20]:
        for text in (str(value), str(value).zfill(20)):
            fits = len(text) <= 20 and int(text) <= edge
            assert (pattern.search(text) is not None) == fits, text
    assert pattern.search("") is None and pattern.search("1a") is None
