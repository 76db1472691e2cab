"""Operations endpoints (no auth): liveness, readiness, Prometheus metrics, the docs page."""

from __future__ import annotations

import hmac
from typing import Any

from litestar import MediaType, Request, Response, get
from litestar.di import NamedDependency

from omnistock.api.errors import problem
from omnistock.domain.roles import Role
from omnistock.usecases.operations import Operations


@get("/healthz", include_in_schema=False)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get("/readyz", include_in_schema=False)
async def readyz(operations: NamedDependency[Operations]) -> Response[Any]:
    down, failing = await operations.down()
    if down:
        names = " and ".join(reason.split(":")[0] for reason in down)
        return problem(
            503,
            "not-ready",
            "Not ready",
            f"{names} down: " + "; ".join(down),
            down=down,
            failing_loops=sorted(failing),
        )
    return Response({"status": "ready", "redis": "ok", "postgres": "ok", "loops": "ok"})


async def _metrics_denied(
    request: Request[Any, Any, Any], operations: Operations
) -> Response[Any] | None:
    """With ``metrics_key`` set, /metrics needs ``Authorization: Bearer`` with it or an admin key."""
    wanted = operations.metrics_key
    if wanted is None:
        return None
    scheme, _, secret = request.headers.get("authorization", "").partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret:
        return problem(401, "unauthorized", "Missing or unknown API key", _METRICS_AUTH)
    if hmac.compare_digest(secret.encode(), wanted.encode()):
        return None
    found = await operations.principal(secret)
    if found is None:
        return problem(401, "unauthorized", "Missing or unknown API key", _METRICS_AUTH)
    if found.role is not Role.ADMIN:
        return problem(403, "forbidden", "This API key may not do that", _METRICS_AUTH)
    return None


_METRICS_AUTH = "/metrics needs 'Authorization: Bearer <OMNISTOCK_METRICS_KEY or an admin key>'"


@get("/metrics", include_in_schema=False, media_type="text/plain; version=0.0.4")
async def metrics(
    request: Request[Any, Any, Any], operations: NamedDependency[Operations]
) -> Response[Any]:
    """Prometheus metrics; open unless ``OMNISTOCK_METRICS_KEY`` is set."""
    denied = await _metrics_denied(request, operations)
    if denied is not None:
        return denied
    return Response(await operations.metrics_text(), media_type="text/plain; version=0.0.4")


# The one inline script of /docs: the Content-Security-Policy allows exactly it, by its hash.
DOCS_SCRIPT = """window.ui = SwaggerUIBundle({url: "/schema/openapi.json", dom_id: "#swagger-ui",
  persistAuthorization: true, validatorUrl: null});"""
DOCS_HTML = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>omnistock API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/docs/assets/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script>{DOCS_SCRIPT}</script>
</body></html>"""


@get("/docs", include_in_schema=False, media_type=MediaType.HTML)
async def docs() -> str:
    """Interactive API docs (Swagger UI served from the package, no CDN needed)."""
    return DOCS_HTML
