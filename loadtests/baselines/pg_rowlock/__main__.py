"""Command line of the row-lock baseline: ``serve``, ``seed`` and ``check`` (see the package doc)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable

import asyncpg
import msgspec

from loadtests.baselines.pg_rowlock import store


async def with_pool(url: str, work: Callable[[asyncpg.Pool], Awaitable[int]]) -> int:
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
    assert pool is not None
    try:
        await store.setup(pool)
        return await work(pool)
    finally:
        await pool.close()


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    # Workers build the app from the environment (uvicorn imports the factory in each).
    os.environ["PG_ROWLOCK_DATABASE_URL"] = args.database_url
    os.environ["PG_ROWLOCK_KEY"] = args.key or ""
    os.environ["PG_ROWLOCK_POOL_SIZE"] = str(args.pool_size)
    os.environ["PG_ROWLOCK_SYNCHRONOUS_COMMIT"] = args.synchronous_commit
    print(f"pg_rowlock serving on http://{args.host}:{args.port}", file=sys.stderr)
    uvicorn.run(
        "loadtests.baselines.pg_rowlock.app:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )
    return 0


def cmd_seed(args: argparse.Namespace) -> int:
    async def work(pool: asyncpg.Pool) -> int:
        await store.seed(
            pool, args.location, args.sku, args.on_hand, safety_stock=args.safety_stock
        )
        print(
            f"seeded {len(args.sku)} sku(s) at {args.location}: on_hand {args.on_hand}, nothing held"
        )
        return 0

    return asyncio.run(with_pool(args.database_url, work))


def cmd_check(args: argparse.Namespace) -> int:
    """Print the position and what active reservations hold of it; exit 1 on any oversell."""

    async def work(pool: asyncpg.Pool) -> int:
        found = await store.audit(pool, args.location, args.sku)
        print(msgspec.json.encode(found).decode())
        return 0 if found.consistent else 1

    return asyncio.run(with_pool(args.database_url, work))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.baselines.pg_rowlock")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve POST /v1/reservations over HTTP")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8100)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--pool-size", type=int, default=20, help="Postgres connections per worker")
    serve.add_argument("--key", help="require Authorization: Bearer KEY")
    serve.add_argument("--synchronous-commit", default="off", choices=["on", "off", "local"])
    serve.set_defaults(run=cmd_serve)
    seed = sub.add_parser("seed", help="fresh round: skus with on_hand, no reservations")
    seed.add_argument("--location", required=True)
    seed.add_argument("--sku", action="append", required=True, help="repeat for more skus")
    seed.add_argument("--on-hand", type=int, default=10_000)
    seed.add_argument("--safety-stock", type=int, default=0, help="the location's safety stock")
    seed.set_defaults(run=cmd_seed)
    check = sub.add_parser("check", help="read a position back; exit 1 on oversell")
    check.add_argument("--location", required=True)
    check.add_argument("--sku", required=True)
    check.set_defaults(run=cmd_check)
    for command in (serve, seed, check):
        command.add_argument("--database-url", required=True, help="postgresql://...")
    args = parser.parse_args(argv)
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
