"""Every error leaves as RFC 9457 problem+json; no input, however malformed, gives a 5xx."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge

from omnistock.api.body import humane
from omnistock.domain.errors import DomainError

log = logging.getLogger("omnistock.api")

PROBLEM_JSON = "application/problem+json"
REPLAYED_HEADER = "Idempotent-Replayed"
# Every 503 says when to come back (API.md); a problem may name its own ``retry_after_seconds``.
RETRY_AFTER_SECONDS = 1
_encode = msgspec.json.Encoder().encode
_SLUGS = {
    400: ("bad-request", "Bad request"),
    401: ("unauthorized", "Missing or unknown API key"),
    403: ("forbidden", "This API key may not do that"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    408: ("request-timeout", "Request timeout"),
    413: ("payload-too-large", "Request body too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    429: ("too-many-requests", "Too many requests"),
    503: ("unavailable", "Service unavailable"),
}


def problem(
    status: int,
    slug: str,
    title: str,
    detail: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response[bytes]:
    """A problem+json response."""
    body: dict[str, Any] = {
        "type": f"urn:omnistock:problem:{slug}",
        "title": title,
        "status": status,
    }
    body["detail"] = detail
    body.update(extra)
    if status == 401:
        headers = {**(headers or {}), "WWW-Authenticate": 'Bearer realm="omnistock"'}
    if status == 503:
        retry = extra.get("retry_after_seconds", RETRY_AFTER_SECONDS)
        headers = {"Retry-After": str(max(1, int(retry))), **(headers or {})}
    return Response(_encode(body), status_code=status, media_type=PROBLEM_JSON, headers=headers)


def validation_problem(
    field: str, message: str, errors: list[dict[str, str]] | None = None
) -> Response[bytes]:
    errors = errors or [{"field": field, "message": message}]
    return problem(
        422, "validation", "Validation failed", f"{field}: {message}", field=field, errors=errors
    )


def on_domain_error(_: Request[Any, Any, Any], exc: DomainError) -> Response[bytes]:
    headers = {REPLAYED_HEADER: "true"} if exc.replayed else None
    return problem(exc.status, exc.slug, exc.title, exc.detail, headers, **exc.extra)


def _wire_name(request: Request[Any, Any, Any], key: str) -> str:
    """A parameter as the client spells it (``If-Match``), not as the handler names it."""
    try:
        param = request.route_handler.parsed_fn_signature.parameters.get(key)
    except Exception:  # no handler resolved: keep Litestar's key
        return key
    kwarg = getattr(param, "kwarg_definition", None)
    for alias in ("header", "query", "name"):
        if isinstance(found := getattr(kwarg, alias, None), str):
            return found
    return key


def _body_is_optional(request: Request[Any, Any, Any]) -> bool:
    try:
        data = request.route_handler.parsed_fn_signature.parameters.get("data")
    except Exception:  # no handler resolved
        return False
    return data is not None and data.has_default


def on_validation(request: Request[Any, Any, Any], exc: ValidationException) -> Response[bytes]:
    """Litestar's parameter and body validation, reported as 422 naming each field."""
    errors: list[dict[str, str]] = []
    for item in exc.extra if isinstance(exc.extra, list) else []:
        if not isinstance(item, dict):
            continue
        key = _wire_name(request, str(item.get("key") or "body"))
        message = humane(str(item.get("message", "invalid")))
        if key == "data":
            key = "body"
            if message == "'data'":
                if _body_is_optional(request):
                    continue  # Litestar lists an optional body when another parameter fails
                message = "a JSON body is required"
        errors.append({"field": key, "message": message})
    if not errors:
        errors.append({"field": "body", "message": str(exc.detail)})
    return validation_problem(errors[0]["field"], errors[0]["message"], errors)


def on_http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    status = exc.status_code
    if status >= 500:
        log.error("server error: %s", exc.detail)
        return problem(status, "server-error", "Internal error", "the server failed; see its log")
    if status == 400:
        # Litestar raises a 400 for bodies it cannot parse (malformed JSON, wrong content).
        return validation_problem("body", f"malformed JSON: {exc.detail}")
    slug, title = _SLUGS.get(status, ("error", "Error"))
    detail = str(exc.detail)
    if isinstance(exc, RequestEntityTooLarge):  # Litestar's body limit: name it (api/limits.py)
        limit = request.route_handler.resolve_request_max_body_size()
        if limit:
            detail = f"the request body may not exceed {limit} bytes"
    return problem(status, slug, title, detail, dict(exc.headers or {}) or None)


def on_redis_error(_: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.warning("redis unavailable: %s", exc)
    return problem(
        503, "redis-unavailable", "Redis unavailable", f"the live store does not answer: {exc}"
    )


def on_postgres_data_error(_: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    """A value the database refused (input validation should have caught it first)."""
    log.warning("postgres refused a value: %s", exc)
    return problem(422, "invalid-value", "Invalid value", f"the database refused a value: {exc}")


def on_postgres_error(_: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.warning("postgres unavailable: %s", exc)
    return problem(
        503, "postgres-unavailable", "Postgres unavailable", f"the database does not answer: {exc}"
    )


def on_os_error(_: Request[Any, Any, Any], exc: OSError) -> Response[bytes]:
    log.warning("backing store unreachable: %s", exc)
    return problem(
        503, "unavailable", "Service unavailable", f"a backing store does not answer: {exc}"
    )


def on_unexpected(_: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.exception("unexpected error", exc_info=exc)
    return problem(500, "server-error", "Internal error", "the server failed; see its log")


# The drivers' errors (Redis, Postgres) are paired with on_redis_error, on_postgres_error and
# on_postgres_data_error where the drivers are known: omnistock/http_errors.py.
API_EXCEPTION_HANDLERS: dict[Any, Any] = {
    DomainError: on_domain_error,
    ValidationException: on_validation,
    HTTPException: on_http_error,
    OSError: on_os_error,
    Exception: on_unexpected,
}
