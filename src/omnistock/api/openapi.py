"""The OpenAPI document, kept honest (API.md, "Conventions (additions)").

- Error responses: each route decorator lists the codes it can answer with ``responses(...)``;
  the codes any ``/v1`` operation can answer (401, 408, 429, 431, 503) are added by it, so a route
  cannot forget them. Every error is a problem+json body (:class:`Problem`).
- Request bodies are described by msgspec from the very types the strict decoder uses
  (:func:`body_schema`), so the document and the validation cannot disagree.
- Headers: ``Retry-After`` on 429 and 503, ``RateLimit-Policy``/``RateLimit`` on every ``/v1``
  response, added to the served document by :class:`OpenAPIJson` (Litestar's ``ResponseSpec`` has
  no headers).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
from litestar import Litestar, Request
from litestar.datastructures import ResponseHeader
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.openapi.spec import (
    OpenAPIFormat,
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    RequestBody,
    Schema,
)
from msgspec import UNSET, Meta, UnsetType

from omnistock.api.errors import PROBLEM_JSON

# Codes every /v1 operation can answer, whatever it does.
EVERY_OPERATION = (401, 408, 429, 431, 503)
DESCRIPTIONS: dict[int, str] = {
    401: "Missing or unknown API key.",
    403: "This API key's role (or a store key's locations) may not do that.",
    404: "Not found (an unknown location, reservation or key).",
    408: "The request did not arrive in full within 30 s.",
    409: "Conflict with the current state (e.g. not enough stock: `shortages`; a reservation no "
    "longer active: `reservation_status`).",
    412: "`If-Match` names another version than the current one.",
    413: "The body (for the import: one line) is larger than its documented limit.",
    422: "Validation failed: `field` (and `errors`) name what is wrong; also an Idempotency-Key "
    "reused with a different request.",
    429: "Over this API key's rate limit: retry after `Retry-After` seconds.",
    431: "Request headers larger than 64 KiB.",
    503: "Redis or Postgres does not answer: retry after `Retry-After` seconds.",
}
RETRY_AFTER_CODES = ("429", "503")


class FieldError(msgspec.Struct, kw_only=True):
    field: str
    message: str


class Problem(msgspec.Struct, kw_only=True):
    """RFC 9457 problem details; some problems carry more members (``shortages``,
    ``reservation_status``, ...)."""

    type: str
    title: str
    status: Annotated[int, Meta(ge=400, le=599)]
    detail: str
    field: str | UnsetType = UNSET
    errors: list[FieldError] | UnsetType = UNSET


# Success headers some operations send (documented only: the handlers set them).
REPLAYED = [
    ResponseHeader(
        name="Idempotent-Replayed",
        documentation_only=True,
        description="`true` when this is the recorded answer to an earlier request with the "
        "same Idempotency-Key",
    )
]
ETAG = ResponseHeader(
    name="ETag",
    documentation_only=True,
    required=True,
    description='the position\'s version, quoted ("3"): send it back as If-Match',
)


def responses(*codes: int) -> dict[int, ResponseSpec]:
    """The error responses of a ``/v1`` operation: ``codes`` plus :data:`EVERY_OPERATION`."""
    return {
        code: ResponseSpec(
            data_container=Problem,
            media_type=PROBLEM_JSON,
            description=DESCRIPTIONS[code],
            generate_examples=False,
        )
        for code in sorted({*codes, *EVERY_OPERATION})
    }


class RawSchema(Schema):
    """A JSON Schema given as a dict (rendered as is)."""

    def __init__(self, raw: dict[str, Any]) -> None:
        super().__init__()
        self.raw = raw

    def to_schema(self) -> dict[str, Any]:
        return self.raw


def _inline(node: Any, defs: Mapping[str, Any]) -> Any:
    """``node`` with every ``$ref`` into ``defs`` replaced by its target (bodies are not
    recursive)."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            target = dict(defs[ref.removeprefix("#/$defs/")])
            target.update({k: v for k, v in node.items() if k != "$ref"})
            return _inline(target, defs)
        return {k: _inline(v, defs) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline(v, defs) for v in node]
    return node


def body_schema(annotation: Any) -> RawSchema:
    """The JSON Schema msgspec derives from ``annotation``: what the strict decoder enforces."""
    raw = msgspec.json.schema(annotation)
    defs = raw.pop("$defs", {})
    return RawSchema(_inline(raw, defs))


_TEXT_BODY = Schema(
    type=OpenAPIType.STRING,
    format=OpenAPIFormat.BINARY,
    description="lines of text (not JSON): each line is checked and, if bad, reported in "
    "`rejected` with its number",
)


@dataclass
class StreamedImport(Operation):
    """``POST /v1/stock:import`` reads its body as a stream (no ``data`` parameter for Litestar to
    describe): CSV or NDJSON lines."""

    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            required=True,
            description="CSV with the header `location,sku,on_hand[,safety_stock]`, or NDJSON "
            'objects `{"location","sku","on_hand","safety_stock"?}`, one per line.',
            content={
                media: OpenAPIMediaType(schema=_TEXT_BODY)
                for media in ("text/csv", "application/x-ndjson")
            },
        )


_STRING = {"type": "string"}
RATE_LIMIT_HEADERS: dict[str, Any] = {
    "RateLimit-Policy": {
        "description": "The rate limit policy of this API key (IETF draft ratelimit headers).",
        "schema": _STRING,
    },
    "RateLimit": {
        "description": "What is left of this API key's limit and when it resets.",
        "schema": _STRING,
    },
}
RETRY_AFTER = {
    "description": "Seconds to wait before retrying.",
    "required": True,
    "schema": {"type": "integer", "minimum": 0},
}


# OpenAPI links: how a created resource's id feeds the operations on it (clients and stateful
# testers follow them). Keyed by (path, method, status).
LINKS: dict[tuple[str, str, str], dict[str, Any]] = {
    ("/v1/keys", "post", "201"): {
        "DeleteKey": {
            "operationRef": "#/paths/~1v1~1keys~1{key_id}/delete",
            "parameters": {"key_id": "$response.body#/id"},
        }
    },
    ("/v1/reservations", "post", "201"): {
        f"{name.title()}Reservation": {
            "operationRef": f"#/paths/~1v1~1reservations~1{{reservation_id}}{suffix}/{method}",
            "parameters": {"reservation_id": "$response.body#/id"},
        }
        for name, suffix, method in [
            ("get", "", "get"),
            ("commit", "~1commit", "post"),
            ("release", "~1release", "post"),
            ("extend", "~1extend", "post"),
        ]
    },
}


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """An optional text parameter is left out, not sent as null: ``oneOf: [X, null]`` -> ``X``
    (with the constraints Litestar puts beside the ``oneOf``). A number keeps its null: Litestar
    reads ``radius_km=null`` as absent."""
    variants = schema.get("oneOf")
    if not isinstance(variants, list):
        return schema
    kept = [v for v in variants if v != {"type": "null"}]
    if len(kept) != 1 or len(kept) == len(variants):
        return schema
    if kept[0].get("type") not in ("string", "array"):
        return schema
    rest = {k: v for k, v in schema.items() if k != "oneOf"}
    return {**kept[0], **rest}


def finish(document: dict[str, Any]) -> dict[str, Any]:
    """What Litestar cannot declare per operation, added to a rendered document: headers,
    links, parameters without null."""
    document = copy.deepcopy(document)
    for path, item in document.get("paths", {}).items():
        if not path.startswith("/v1"):
            continue
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            for param in operation.get("parameters", []):
                param["schema"] = _not_null(param["schema"])
            # Litestar documents its ValidationException as a 400; this app answers those 422
            # (api/errors.py: on_validation), which responses() lists.
            operation["responses"].pop("400", None)
            for code, response in operation["responses"].items():
                if code == "204":  # no content, by definition (RFC 9110)
                    response.pop("content", None)
                if links := LINKS.get((path, method, code)):
                    response["links"] = copy.deepcopy(links)
                headers = response.setdefault("headers", {})
                for header in headers.values():  # documentation-only headers come bare
                    header.setdefault("schema", dict(_STRING))
                for media, body in response.get("content", {}).items():
                    if media.startswith("text/") and not body.get("schema"):
                        body["schema"] = dict(_STRING)  # a streamed text body
                headers.update(copy.deepcopy(RATE_LIMIT_HEADERS))
                if code in RETRY_AFTER_CODES:
                    headers["Retry-After"] = dict(RETRY_AFTER)
    return document


class OpenAPIJson(JsonRenderPlugin):
    """``/schema/openapi.json``: Litestar's document, finished by :func:`finish` (once)."""

    def __init__(self) -> None:
        super().__init__()
        self._finished: bytes | None = None

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        if self._finished is None:
            self._finished = super().render(request, finish(openapi_schema))
        return self._finished


def document(app: Litestar) -> dict[str, Any]:
    """The OpenAPI document ``app`` serves at ``/schema/openapi.json``."""
    return finish(app.openapi_schema.to_schema())
