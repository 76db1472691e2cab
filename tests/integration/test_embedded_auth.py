"""Embedded Postgres made before passwords (round 1: ``trust``) is switched to scram-sha-256 on its
next start, keeping its data; the generated passwords are reused across restarts."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest
import redis

from omnistock.embedded import EmbeddedPostgres, EmbeddedValkey
from tests.conftest import TEST_PG_SETTINGS, private_dir


async def test_a_trust_data_directory_gets_password_auth() -> None:
    with private_dir("omnistock-pgauth-") as base:
        pg = EmbeddedPostgres(base / "postgres", settings=TEST_PG_SETTINGS)
        pg.start()
        conn = await asyncpg.connect(pg.url)
        await conn.execute("CREATE TABLE kept (x int); INSERT INTO kept VALUES (7)")
        await conn.close()
        pg.stop()
        # As round 1 left it: every rule trust.
        hba = pg.directory / "pg_hba.conf"
        hba.write_text(hba.read_text().replace("scram-sha-256", "trust"))

        again = EmbeddedPostgres(base / "postgres", settings=TEST_PG_SETTINGS)
        assert again.password == pg.password  # the same file, reused
        again.start()
        try:
            with pytest.raises(asyncpg.InvalidPasswordError):
                await asyncpg.connect(
                    host="127.0.0.1", port=again.port, user="postgres", database="omnistock"
                )
            conn = await asyncpg.connect(again.url)
            assert await conn.fetchval("SELECT x FROM kept") == 7
            await conn.close()
            assert "trust" not in {
                line.split()[-1]
                for line in hba.read_text().splitlines()
                if line.strip() and not line.startswith("#")
            }
        finally:
            again.stop()


def test_valkey_password_survives_a_restart(tmp_path: Path) -> None:
    valkey = EmbeddedValkey(tmp_path / "valkey")
    valkey.start()
    try:
        with redis.Redis.from_url(valkey.url) as client:
            client.set("k", "v")
    finally:
        valkey.stop()
    again = EmbeddedValkey(tmp_path / "valkey")
    assert again.url.split("@")[0] == valkey.url.split("@")[0]
    again.start()
    try:
        with redis.Redis.from_url(again.url) as client:
            assert client.get("k") == b"v"
        with pytest.raises(redis.AuthenticationError), redis.Redis(port=again.port) as anon:
            anon.get("k")
        assert not (tmp_path / "valkey" / "auth.conf").stat().st_mode & 0o077
    finally:
        again.stop()
