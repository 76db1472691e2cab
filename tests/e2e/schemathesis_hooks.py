"""Hooks for the contract test's ``st run`` (loaded through ``SCHEMATHESIS_HOOKS``).

Each failure dropped here is one rule the OpenAPI document states in words because OpenAPI
cannot state it as schema: a rule across query parameters, a rule about what the stores hold
(the data, not the request's shape), or the text lines of the streamed import. Each predicate
matches only that rule's own answer (operation, status and the problem's ``field`` or ``type``),
so any other refusal on the same operation still fails the run.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from typing import Any

import schemathesis
from schemathesis.core.failures import Failure
from schemathesis.openapi.checks import RejectedPositiveData


@schemathesis.serializer("text/csv", "application/x-ndjson")
def text_lines(ctx: Any, value: Any) -> Any:
    """The import's body is text lines, sent as they are."""
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8", "surrogatepass")


@schemathesis.deserializer("text/tab-separated-values")
def tsv(ctx: Any, response: Any) -> Any:
    """The feed is text (its 200 schema is a string)."""
    return response.content.decode("utf-8")


def _problem(response: Any) -> dict[str, Any]:
    try:
        body = json.loads(response.content)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _slug(problem: dict[str, Any]) -> str:
    return str(problem.get("type", "")).rsplit(":", 1)[-1]


# (method, path template) -> what a 422 that a schema-valid request may get there names, and why.
# A value is a set of problem fields (an index as [*]).
STATED_IN_WORDS: dict[tuple[str, str], set[str]] = {
    # radius_km only with near: OpenAPI cannot relate two query parameters.
    ("GET", "/v1/locations"): {"radius_km"},
    ("GET", "/v1/availability/{sku}"): {"radius_km"},
    # location or group, not both: the same.
    ("GET", "/v1/feeds/local-inventory"): {"group"},
    # before must be an event of this position's history: a fact of the data.
    ("GET", "/v1/stock/{location_id}/{sku}/history"): {"before"},
    # At most 10,000 cells (skus x locations): a product of two lengths, beyond JSON Schema.
    ("POST", "/v1/availability"): {"skus"},
    # A key's locations must exist; a time zone must be in the server's tz database: data.
    ("POST", "/v1/keys"): {"locations[*]"},
    ("PUT", "/v1/locations/{location_id}"): {"timezone"},
    # Duplicate lines are summed and the sum is capped at 1,000,000 (across items).
    # (A schema-valid line's qty is <= 1,000,000, so a 422 naming one is that sum.)
    ("POST", "/v1/reservations"): {"lines", "lines[*].qty"},
    ("POST", "/v1/reservations/{reservation_id}/commit"): {"lines", "lines[*].qty"},
    ("POST", "/v1/sourcing/reservations"): {"lines", "lines[*].qty"},
    # extend may not pass created_at + 7 days: depends on the reservation's age.
    ("POST", "/v1/reservations/{reservation_id}/extend"): {"ttl_seconds"},
    # A change whose result would pass 10^12: depends on the stock already held (adjust.lua names
    # the item's delta; a schema-valid delta is within ±10^9, so a 422 naming one is that cap).
    ("POST", "/v1/adjustments"): {"adjustments[*].delta"},
    # Supply: `before` must be a supply (data); a line must be one of the supply's (data); lines
    # naming one sku are summed and the sum capped at 10^9; and no quantity may pass 10^12,
    # which depends on the stock already held (a schema-valid qty is <= 10^9).
    ("GET", "/v1/supply"): {"before"},
    ("POST", "/v1/supply"): {"lines[*].qty"},
    ("POST", "/v1/supply/{supply_id}/receive"): {"lines[*].qty", "lines[*].sku"},
    # Transfers: as supply, and `to` must be another location than `from` (two fields).
    ("GET", "/v1/transfers"): {"before"},
    ("POST", "/v1/transfers"): {"lines[*].qty", "to"},
    ("POST", "/v1/transfers/{transfer_id}/receive"): {"lines[*].qty", "lines[*].sku"},
    # The import's body is text lines: its header row is stated in the description.
    ("POST", "/v1/stock:import"): {"body"},
}
DROPPED_LOG = os.environ.get("OMNISTOCK_CONTRACT_DROPPED", "")


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: Any) -> None:
    """A valid Idempotency-Key is made unique per call: the generator draws the same few keys
    again and again, and the same key with another body is (rightly) a 422, which would hide
    what the operation does. Invalid keys (empty, over 255) are sent as drawn."""
    if case.meta is not None and case.meta.generation.mode.is_negative:
        return  # rewriting would make schemathesis re-judge (and send) the case as positive
    headers = case.headers or {}
    for name in list(headers):
        value = headers[name]
        if name.lower() == "idempotency-key" and isinstance(value, str) and 1 <= len(value) <= 255:
            headers[name] = f"{value[:200]}-{uuid.uuid4().hex}"


def _field_matches(field: str, wanted: set[str]) -> bool:
    """``field`` (``locations[3]``) is one of ``wanted`` (``locations[*]``)."""
    return field in wanted or re.sub(r"\[[0-9]+\]", "[*]", field) in wanted


@schemathesis.hook
def filter_failure(context: Any, failure: Failure, case: Any, response: Any) -> bool:
    """False (drop) only for a schema-valid request refused by a rule stated in words."""
    if not isinstance(failure, RejectedPositiveData):
        return True
    method, path = case.operation.method.upper(), case.operation.path
    problem = _problem(response)
    keep = True
    if response.status_code == 412 and (method, path) == ("PUT", "/v1/stock/{location_id}/{sku}"):
        # If-Match names a version the position is not at: a precondition on the data.
        keep = _slug(problem) != "version-mismatch"
    elif response.status_code == 422:
        wanted = STATED_IN_WORDS.get((method, path), set())
        keep = not _field_matches(str(problem.get("field", "")), wanted)
    if not keep and DROPPED_LOG:
        with open(DROPPED_LOG, "a") as log:
            line = {"op": f"{method} {path}", "status": response.status_code}
            line.update(field=problem.get("field"), detail=str(problem.get("detail"))[:80])
            log.write(json.dumps(line) + "\n")
    return keep
