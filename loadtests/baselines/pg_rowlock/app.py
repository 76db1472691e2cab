"""The row-lock baseline over HTTP, on omnistock's own stack and request/response code: Litestar
with the same strict body decoding, schemas, problem+json handlers and reservation rendering,
asyncpg, uvicorn (uvloop, httptools). Only the storage differs, so a load generator measures the
storage design. Routes: ``POST /v1/reservations`` (as omnistock's), ``GET /v1/stock/{loc}/{sku}``
(the position) and ``GET /healthz``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from typing import Annotated, Any

import asyncpg
from litestar import Litestar, Request, get, post
from litestar.params import JSONBody, PathParameter

from loadtests.baselines.pg_rowlock import store
from omnistock.api.body import StrictBody
from omnistock.api.schemas import ReservationCreate
from omnistock.domain.errors import Unauthorized
from omnistock.domain.ids import IDENTIFIER_PATTERN, new_reservation_id
from omnistock.domain.reservations import Reservation, present, sum_lines
from omnistock.domain.stock import Position
from omnistock.http_errors import EXCEPTION_HANDLERS

log = logging.getLogger("pg_rowlock")

DEFAULT_TTL_SECONDS = 900
EXPIRY_INTERVAL_SECONDS = 1.0
Ident = Annotated[str, PathParameter(pattern=IDENTIFIER_PATTERN)]


def pool_of(request: Request[Any, Any, Any]) -> asyncpg.Pool:
    pool: asyncpg.Pool = request.app.state.pool
    return pool


def authorize(request: Request[Any, Any, Any]) -> None:
    """With a key configured, ``Authorization: Bearer <key>`` is required (a string compare)."""
    key: str | None = request.app.state.key
    if key is not None and request.headers.get("authorization") != f"Bearer {key}":
        raise Unauthorized("missing or unknown API key")


@post("/v1/reservations", status_code=201, dto=StrictBody)
async def create_reservation(
    request: Request[Any, Any, Any], data: JSONBody[ReservationCreate]
) -> Reservation:
    authorize(request)
    doc = await store.reserve(
        pool_of(request),
        reservation_id=new_reservation_id(0),
        location=data.location,
        lines=sum_lines((line.sku, line.qty) for line in data.lines),
        ttl_seconds=data.ttl_seconds or DEFAULT_TTL_SECONDS,
        channel=data.channel,
        ref=data.ref,
        allow_partial=data.allow_partial,
        actor="baseline",
    )
    return present(doc)


@get("/v1/stock/{location:str}/{sku:str}")
async def read_position(request: Request[Any, Any, Any], location: Ident, sku: Ident) -> Position:
    authorize(request)
    return await store.position(pool_of(request), location, sku)


@get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


async def expire_forever(pool: asyncpg.Pool) -> None:
    """Like omnistock's sweeper: active reservations past their time are released."""
    while True:
        await asyncio.sleep(EXPIRY_INTERVAL_SECONDS)
        try:
            await store.expire_due(pool)
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("expiry failed: %s", exc)


def create_app(
    database_url: str,
    *,
    key: str | None = None,
    pool_size: int = 20,
    synchronous_commit: str = "off",
) -> Litestar:
    """The baseline app. ``synchronous_commit=off`` acknowledges before the WAL is on disk, as
    omnistock acknowledges before Redis syncs its AOF: the fair (and the baseline's fastest) match."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        pool = await asyncpg.create_pool(
            database_url,
            min_size=pool_size,
            max_size=pool_size,
            server_settings={"synchronous_commit": synchronous_commit},
        )
        assert pool is not None
        await store.setup(pool)
        app.state.pool, app.state.key = pool, key
        sweeper = asyncio.create_task(expire_forever(pool))
        try:
            yield
        finally:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
            await pool.close()

    return Litestar(
        route_handlers=[create_reservation, read_position, healthz],
        lifespan=[lifespan],
        exception_handlers=EXCEPTION_HANDLERS,
        openapi_config=None,
    )


def app_from_env() -> Litestar:
    """The uvicorn factory for ``serve`` (workers read their configuration from the environment)."""
    return create_app(
        os.environ["PG_ROWLOCK_DATABASE_URL"],
        key=os.environ.get("PG_ROWLOCK_KEY") or None,
        pool_size=int(os.environ.get("PG_ROWLOCK_POOL_SIZE", "20")),
        synchronous_commit=os.environ.get("PG_ROWLOCK_SYNCHRONOUS_COMMIT", "off"),
    )
