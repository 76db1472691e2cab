"""The data commands as a user runs them: import, reconcile (and --fix), rebuild."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from omnistock.domain.locations import Location
from omnistock.postgres import catalog
from omnistock.redis import keys
from tests.integration.conftest import PARTITIONS, Stack


def omnistock(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNISTOCK_")}
    env.update(
        OMNISTOCK_REDIS_URL=stack.servers.redis_url,
        OMNISTOCK_DATABASE_URL=stack.servers.database_url,
        OMNISTOCK_PARTITIONS=str(PARTITIONS),
        OMNISTOCK_LOG_LEVEL="warning",
    )
    return subprocess.run(
        [sys.executable, "-m", "omnistock", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_import_reconcile_rebuild(stack: Stack, uid: str, tmp_path: Path) -> None:
    loc = Location(id=uid, name=uid, kind="warehouse")
    await catalog.upsert_location(stack.db, loc)
    await stack.store.put_location_meta([loc])
    rows = [f"{uid},sku-{i},{i + 1}" for i in range(3000)]
    rows.insert(5, f"{uid},bad sku,1")
    rows.insert(9, f"{uid}-nowhere,x,1")
    path = tmp_path / "stock.csv"
    path.write_text("location,sku,on_hand\n" + "\n".join(rows) + "\n")

    done = omnistock(stack, "import", str(path))
    assert done.returncode == 1, done.stderr  # some lines were rejected
    assert "imported 3,000 rows" in done.stdout
    assert "line 7: sku must be" in done.stdout and "line 11: unknown location" in done.stdout
    assert "rows/s" in done.stderr  # the progress bar
    assert (await stack.store.get_position(loc, "sku-2999")).on_hand == 3000
    # Persisted before the command returned, even with no server running.
    assert (
        await stack.db.fetchval("SELECT count(*) FROM positions WHERE location = $1", uid) == 3000
    )

    again = omnistock(stack, "import", str(path))
    assert "imported 3,000 rows" in again.stdout
    assert await stack.db.fetchval("SELECT count(*) FROM ledger WHERE location = $1", uid) == 3000

    clean = omnistock(stack, "reconcile")
    assert (clean.returncode, clean.stdout.strip()) == (0, "no drift: Redis and Postgres agree")

    p = stack.store.partition(uid)
    await stack.redis.hset(keys.position(p, uid, "sku-7"), "oh", 999)
    drift = omnistock(stack, "reconcile")
    assert drift.returncode == 1
    assert "sku-7" in drift.stdout and "on_hand" in drift.stdout and "999" in drift.stdout
    fixed = omnistock(stack, "reconcile", "--fix")
    assert fixed.returncode == 0 and "repaired" in fixed.stdout
    assert (await stack.store.get_position(loc, "sku-7")).on_hand == 8
    assert omnistock(stack, "reconcile").returncode == 0

    await stack.redis.flushall()
    rebuilt = omnistock(stack, "rebuild")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "rebuilt Redis from Postgres" in rebuilt.stdout
    await stack.store.put_location_meta([loc])
    assert (await stack.store.get_position(loc, "sku-2999")).on_hand == 3000
    assert omnistock(stack, "reconcile").returncode == 0


async def test_import_command_keeps_the_input_limits(
    stack: Stack, uid: str, tmp_path: Path
) -> None:
    """``omnistock import`` reads with the same limits as the API (from OMNISTOCK_IMPORT_*): a long
    line is rejected and reading resumes; a header it cannot read is a message, not a traceback."""
    loc = Location(id=uid, name=uid, kind="warehouse")
    await catalog.upsert_location(stack.db, loc)
    await stack.store.put_location_meta([loc])
    path = tmp_path / "long.csv"
    path.write_bytes(
        b"location,sku,on_hand\n"
        + f"{uid},a,1\n{uid},b,{'9' * 200_000}\n{uid},c,3\n{uid},d,{'x' * 500}".encode()
    )
    done = omnistock(stack, "import", str(path))
    assert done.returncode == 1, done.stderr
    assert "imported 2 rows" in done.stdout
    assert "line 3: line longer than 65536 bytes" in done.stdout
    line_5 = next(line for line in done.stdout.splitlines() if "line 5:" in line)
    assert len(line_5.split("line 5: ", 1)[1]) <= 200  # the rejection does not echo the field
    assert (await stack.store.get_position(loc, "c")).on_hand == 3

    for name, header in [("utf8.csv", b"location,sku,on_hand\xff"), ("wide.csv", b",c" * 5000)]:
        bad = tmp_path / name
        bad.write_bytes(header + f"\n{uid},e,1\n".encode())
        refused = omnistock(stack, "import", str(bad))
        assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr
        assert "CSV header" in refused.stderr
