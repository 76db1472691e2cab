"""The ``omnistock`` command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Sequence

import msgspec

from omnistock.settings import Settings, SettingsError, load_settings


@contextlib.contextmanager
def stores(settings: Settings) -> Iterator[Settings]:
    """``settings`` with both store URLs: configured ones, or the embedded servers of the data
    directory (attached to if another omnistock process runs them, else started for now)."""
    if not settings.embedded:
        yield settings
        return
    from omnistock.embedded import Embedded

    with Embedded.acquire(settings.data_dir) as emb:
        yield msgspec.structs.replace(
            settings,
            redis_url=settings.redis_url or emb.redis_url,
            database_url=settings.database_url or emb.database_url,
        )


async def _migrate(settings: Settings) -> list[str]:
    import asyncpg

    from omnistock.postgres.migrate import migrate

    conn = await asyncpg.connect(settings.database_url)
    try:
        return await migrate(conn)
    finally:
        await conn.close()


async def _demo(settings: Settings) -> None:
    from omnistock.demo import load_demo
    from omnistock.redis.scripts import Scripts
    from omnistock.redis.store import StockStore
    from omnistock.services import check_partitions, connect

    async with connect(settings) as (redis, db):
        await check_partitions(redis, settings.partitions)
        store = StockStore(
            redis,
            Scripts.load(),
            partitions=settings.partitions,
            idempotency_ttl_seconds=settings.idempotency_ttl_seconds,
            retention_seconds=settings.finished_reservation_retention_seconds,
        )
        secret, loaded = await load_demo(db, store)
    print(f"demo: Northwind Outfitters loaded ({loaded} positions set now)", file=sys.stderr)
    print(f"demo admin key: {secret}", flush=True)


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    with stores(settings) as settings:
        assert settings.redis_url and settings.database_url
        applied = asyncio.run(_migrate(settings))
        if applied:
            print(f"migrated: {', '.join(applied)}", file=sys.stderr)
        if args.demo:
            asyncio.run(_demo(settings))
        # Workers (and a --workers > 1 reload) read settings from the environment.
        os.environ["OMNISTOCK_REDIS_URL"] = settings.redis_url
        os.environ["OMNISTOCK_DATABASE_URL"] = settings.database_url
        print(
            f"omnistock serving on http://{args.host}:{args.port} (docs at /docs)", file=sys.stderr
        )
        uvicorn.run(
            "omnistock.app:app_from_env",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            loop="uvloop",
            http="httptools",
            log_level=settings.log_level,
            access_log=False,
            timeout_graceful_shutdown=10,
        )
    return 0


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    with stores(settings) as settings:
        applied = asyncio.run(_migrate(settings))
    print(f"migrated: {', '.join(applied)}" if applied else "schema up to date")
    return 0


async def _create_key(settings: Settings, name: str, role: str, locations: list[str]) -> str:
    import asyncpg

    from omnistock.domain.roles import Role
    from omnistock.postgres import catalog

    conn = await asyncpg.connect(settings.database_url)
    try:
        key = await catalog.create_key(conn, name, Role(role), locations)
    finally:
        await conn.close()
    print(f"created {key.role} key {key.id} ({key.name})", file=sys.stderr)
    assert key.key is not None
    return key.key


def cmd_keys_create(args: argparse.Namespace, settings: Settings) -> int:
    if args.role == "store" and not args.location:
        print("a store key needs --location (one or more)", file=sys.stderr)
        return 2
    with stores(settings) as settings:
        asyncio.run(_migrate(settings))
        print(asyncio.run(_create_key(settings, args.name, args.role, args.location or [])))
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="omnistock", description="Real-time inventory visibility server."
    )
    sub = top.add_subparsers(dest="command", required=True)

    serve = sub.add_parser(
        "serve", help="run the server (embedded Valkey + Postgres unless URLs are set)"
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument(
        "--demo", action="store_true", help="load demo stores, skus and stock; print an admin key"
    )
    serve.set_defaults(run=cmd_serve)

    migrate = sub.add_parser("migrate", help="apply Postgres migrations")
    migrate.set_defaults(run=cmd_migrate)

    keys = sub.add_parser("keys", help="manage API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create an API key and print its secret")
    create.add_argument(
        "--role", required=True, choices=["admin", "integration", "store", "storefront", "feed"]
    )
    create.add_argument(
        "--location", action="append", help="a location a store key may write at (repeatable)"
    )
    create.add_argument("name")
    create.set_defaults(run=cmd_keys_create)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"omnistock: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return int(args.run(args, settings))
