"""The ``omnistock`` command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import msgspec

from omnistock.logs import install_everywhere, uvicorn_log_config
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


def _demo(settings: Settings) -> None:
    from omnistock.cli import admin

    secret, loaded = asyncio.run(admin.demo(settings))
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
            _demo(settings)
        # Workers (and a --workers > 1 reload) read settings from the environment.
        os.environ["OMNISTOCK_REDIS_URL"] = settings.redis_url
        os.environ["OMNISTOCK_DATABASE_URL"] = settings.database_url
        print(
            f"omnistock serving on http://{args.host}:{args.port} (docs at /docs)", file=sys.stderr
        )
        worker = None
        if not args.no_worker:  # one worker process, whatever --workers
            from omnistock.worker_child import WorkerChild

            worker = WorkerChild()
            worker.start()
        # uvicorn shuts down gracefully on SIGINT/SIGTERM, then re-raises the signal: with these
        # handlers it returns instead, so the embedded servers are stopped in order and the exit
        # status is 0.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: None)
        try:
            uvicorn.run(
                "omnistock.app:app_from_env",
                factory=True,
                host=args.host,
                port=args.port,
                workers=args.workers,
                loop="uvloop",
                # httptools plus a header size limit (431) and a header arrival deadline (408).
                http="omnistock.api.protocol:GuardedHttpToolsProtocol",
                log_level=settings.log_level,
                log_config=uvicorn_log_config(settings.log_level),  # API keys masked
                access_log=False,
                # Past twice the message limit the protocol closes the socket (1009) instead of
                # buffering it; below, the handler answers an error (ws_max_message_bytes).
                ws_max_size=2 * settings.ws_max_message_bytes,
                timeout_graceful_shutdown=10,
            )
        finally:
            if worker is not None:
                worker.stop()
    return 0


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from omnistock.worker import worker_main

    with stores(settings) as settings:
        asyncio.run(_migrate(settings))  # a worker may start before any server has
        return worker_main(settings)


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    with stores(settings) as settings:
        applied = asyncio.run(_migrate(settings))
    print(f"migrated: {', '.join(applied)}" if applied else "schema up to date")
    return 0


async def _create_key(settings: Settings, name: str, role: str, locations: list[str]) -> str:
    import asyncpg
    from redis.exceptions import RedisError

    from omnistock.domain.roles import Role
    from omnistock.postgres import catalog
    from omnistock.redis.client import any_client
    from omnistock.usecases.caches import publish

    conn = await asyncpg.connect(settings.database_url)
    try:
        key = await catalog.create_key(conn, name, Role(role), locations)
    finally:
        await conn.close()
    # Running servers answer unknown keys from memory: tell them (they reread the keys). Without
    # Redis they cannot hear it, but they reread everything when their subscription comes back.
    assert settings.redis_url is not None
    redis = any_client(settings.redis_url, 2)
    try:
        await publish(redis, "keys")
    except (RedisError, OSError) as exc:
        print(f"warning: could not tell running servers about the key: {exc}", file=sys.stderr)
    finally:
        await redis.aclose()
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


def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    from omnistock.cli import admin
    from omnistock.domain.errors import DomainError
    from omnistock.usecases.imports import format_for

    path = Path(args.file)
    if not path.is_file():
        print(f"omnistock import: no such file {path}", file=sys.stderr)
        return 2
    try:
        fmt = format_for(
            None
            if args.format is None
            else f"text/{args.format}".replace("text/ndjson", "application/x-ndjson"),
            path.name,
        )
    except DomainError:
        print("omnistock import: say --format csv or --format ndjson", file=sys.stderr)
        return 2
    with stores(settings) as settings:
        asyncio.run(_migrate(settings))
        try:
            result, seconds = asyncio.run(
                admin.import_file(settings, path, path.stat().st_size, fmt, args.actor)
            )
        except DomainError as exc:
            print(f"omnistock import: {exc.detail}", file=sys.stderr)
            return 1
    print(
        f"imported {result.rows:,} rows in {seconds:.2f}s ({result.rows / max(seconds, 1e-9):,.0f} rows/s)"
    )
    for item in result.rejected[:50]:
        print(f"  line {item.line}: {item.error}")
    if result.rejected_total:
        more = result.rejected_total - min(50, len(result.rejected))
        print(
            f"rejected {result.rejected_total:,} lines" + (f" ({more:,} not shown)" if more else "")
        )
        return 1
    return 0


def cmd_rebuild(args: argparse.Namespace, settings: Settings) -> int:
    from omnistock.cli import admin

    with stores(settings) as settings:
        asyncio.run(_migrate(settings))
        done = asyncio.run(admin.rebuild(settings))
    print(
        f"rebuilt Redis from Postgres in {done.seconds:.2f}s: {done.positions:,} positions, "
        f"{done.reservations:,} active reservations, {done.idempotency:,} idempotency records, "
        f"{done.sourcing_holds:,} unfinished sourcing holds, "
        f"{done.supply:,} open supplies, {done.transfers:,} open transfers"
    )
    return 0


def cmd_reconcile(args: argparse.Namespace, settings: Settings) -> int:
    from omnistock.cli import admin
    from omnistock.sync.reconcile import drift_table

    with stores(settings) as settings:
        asyncio.run(_migrate(settings))
        drift = asyncio.run(admin.reconcile(settings, args.fix))
    if not drift:
        print("no drift: Redis and Postgres agree")
        return 0
    print(drift_table(drift))
    if args.fix:
        print(f"{len(drift)} differences repaired in Redis from Postgres")
        return 0
    print(f"{len(drift)} differences (run with --fix to repair Redis from Postgres)")
    return 1


def cmd_feed_follow(args: argparse.Namespace, settings: Settings) -> int:
    from omnistock.feeds.follow import follow_main

    return follow_main(
        args.url,
        args.key,
        Path(args.out),
        location=args.location,
        group=args.group,
        debounce=args.debounce,
    )


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
    serve.add_argument(
        "--no-worker",
        action="store_true",
        help="start no worker process (background work runs in `omnistock worker` elsewhere)",
    )
    serve.set_defaults(run=cmd_serve)

    worker = sub.add_parser(
        "worker", help="run the background work (persister, expiry, trimming) without HTTP"
    )
    worker.set_defaults(run=cmd_worker)

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

    imp = sub.add_parser("import", help="bulk-set on_hand from a CSV or NDJSON file")
    imp.add_argument("file")
    imp.add_argument("--format", choices=["csv", "ndjson"], help="default: from the file name")
    imp.add_argument("--actor", default="import", help="who the ledger names (default: import)")
    imp.set_defaults(run=cmd_import)

    rebuild = sub.add_parser("rebuild", help="reload Redis from Postgres")
    rebuild.set_defaults(run=cmd_rebuild)

    reconcile = sub.add_parser("reconcile", help="compare Redis with Postgres; exit 1 on drift")
    reconcile.add_argument("--fix", action="store_true", help="repair Redis from Postgres")
    reconcile.set_defaults(run=cmd_reconcile)

    feed = sub.add_parser("feed", help="local inventory feeds")
    feed_sub = feed.add_subparsers(dest="feed_command", required=True)
    follow = feed_sub.add_parser(
        "follow", help="keep a local-inventory TSV file current from a server's change stream"
    )
    follow.add_argument("--url", required=True, help="the server, e.g. http://127.0.0.1:8000")
    follow.add_argument("--key", required=True, help="an admin, integration or feed API key")
    follow.add_argument("--out", required=True, help="the TSV file to keep (cursor: FILE.cursor)")
    where = follow.add_mutually_exclusive_group()
    where.add_argument("--location", help="only this location")
    where.add_argument("--group", help="only the locations of this group")
    follow.add_argument(
        "--debounce", type=float, default=0.5, help="seconds to gather changes before a rewrite"
    )
    follow.set_defaults(run=cmd_feed_follow)
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
    install_everywhere()
    return int(args.run(args, settings))
