"""``create_app(settings)``: the Litestar application."""

from __future__ import annotations

import contextlib
import importlib.util
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.enums import ScopeType
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.static_files import create_static_files_router
from litestar.types import ASGIApp, Receive, Scope, Send

from omnistock import __version__
from omnistock.api.allow import fix_options_allow
from omnistock.api.auth import ApiKeyAuth
from omnistock.api.availability import availability_router
from omnistock.api.board import board_assets, board_page
from omnistock.api.feeds import feeds_router
from omnistock.api.guards import body_deadline, page_policy, security_headers
from omnistock.api.history import history_router
from omnistock.api.imports import import_stock
from omnistock.api.keys import keys_router
from omnistock.api.locations import locations_router
from omnistock.api.openapi import OpenAPIJson
from omnistock.api.ops import DOCS_SCRIPT, docs, healthz, metrics, readyz
from omnistock.api.paths import keep_encoded_slashes
from omnistock.api.positions import positions_router
from omnistock.api.ratelimit import rate_limits
from omnistock.api.reservations import reservations_router
from omnistock.api.sourcing import sourcing_router
from omnistock.api.stock import adjustments_router, stock_router
from omnistock.api.stream import stream_socket, websocket_denials
from omnistock.api.supply import supply_router
from omnistock.api.transfers import transfers_router
from omnistock.http_errors import EXCEPTION_HANDLERS
from omnistock.logs import install_everywhere
from omnistock.services import Services, open_services
from omnistock.settings import Settings

# Only /v1 needs a key: health, metrics, docs, the schema and the board page are open.
_OPEN = ["^/$", "^/healthz$", "^/readyz$", "^/metrics$", "^/docs", "^/schema", "^/board"]


def _metrics_middleware(app: ASGIApp) -> ASGIApp:
    """Counts requests by route template and status, and observes their latency."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        method = scope["method"]
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await app(scope, receive, send_wrapper)
        except Exception as exc:
            # Rendered further out (e.g. a 401 from the auth middleware): count its status.
            status = getattr(exc, "status_code", 500)
            raise
        finally:
            svc: Services | None = getattr(scope["app"].state, "services", None)
            if svc is not None:
                route = scope.get("path_template") or "unmatched"
                svc.metrics.requests.inc(route=route, method=method, status=str(status))
                svc.metrics.latency.observe(time.perf_counter() - start, route=route)

    return middleware


def _provide(name: str) -> Provide:
    """The use case ``name`` of the process's services (opened by the lifespan)."""

    def provide(state: State) -> Any:
        return getattr(state.services.usecases, name)

    return Provide(provide, sync_to_thread=False)


# Handlers receive their use case by parameter name (api/ never looks services up itself).
_USE_CASES = (
    "locations",
    "keys",
    "history",
    "reservations",
    "stream",
    "stock",
    "availability",
    "positions",
    "feeds",
    "imports",
    "operations",
    "sourcing",
    "sourcing_holds",
    "supply",
    "transfers",
)


def _swagger_ui_dir() -> Path:
    """Swagger UI's static files (the swagger-ui-py wheel; its Python part is not used)."""
    spec = importlib.util.find_spec("swagger_ui")
    assert spec is not None and spec.submodule_search_locations, "swagger-ui-py is not installed"
    return Path(next(iter(spec.submodule_search_locations))) / "static"


class OmnistockApp(Litestar):
    """Litestar, with the request path fixed up before routing (see ``keep_encoded_slashes``) and
    security headers on every HTTP response (see ``security_headers``)."""

    _secure = staticmethod(security_headers(page_policy([DOCS_SCRIPT])))

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            keep_encoded_slashes(scope)
            if scope["type"] == "http":
                send = self._secure(scope, send)
        await super().__call__(scope, receive, send)


def create_app(settings: Settings) -> Litestar:
    """The app for ``settings`` (both store URLs must be set: ``serve`` sets them when embedded)."""
    policies = settings.rate_limit_policies  # a malformed OMNISTOCK_RATE_LIMITS fails here

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with open_services(settings) as svc:
            app.state.services = svc
            yield

    app = OmnistockApp(
        route_handlers=[
            stock_router,
            history_router,
            import_stock,
            adjustments_router,
            supply_router,
            transfers_router,
            availability_router,
            sourcing_router,
            reservations_router,
            locations_router,
            keys_router,
            positions_router,
            feeds_router,
            stream_socket,
            board_page,
            board_assets,
            healthz,
            readyz,
            metrics,
            docs,
            create_static_files_router(
                "/docs/assets",
                [_swagger_ui_dir()],
                include_in_schema=False,
            ),
        ],
        lifespan=[lifespan],
        dependencies={name: _provide(name) for name in _USE_CASES},
        middleware=[
            body_deadline(settings.http_request_timeout_seconds),
            _metrics_middleware,
            websocket_denials,
            DefineMiddleware(ApiKeyAuth, exclude=_OPEN),
            rate_limits(policies),  # after auth: it counts per API key
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="omnistock",
            version=__version__,
            description=(
                "Real-time inventory visibility: stock, availability, reservations, change "
                "stream. The WebSocket change stream (`/v1/stream`), which OpenAPI cannot "
                "describe, is specified in API.md."
            ),
            path="/schema",
            components=Components(
                security_schemes={"bearer": SecurityScheme(type="http", scheme="bearer")}
            ),
            security=[{"bearer": []}],
            render_plugins=[OpenAPIJson()],
        ),
        debug=False,
    )
    fix_options_allow(app)
    install_everywhere()  # Litestar has just set up its log handlers: no API key in them
    return app


def app_from_env() -> Litestar:
    """The uvicorn factory: settings from ``OMNISTOCK_*`` (``serve`` sets the store URLs)."""
    from omnistock.settings import load_settings

    return create_app(load_settings())
