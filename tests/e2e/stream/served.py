"""``omnistock serve`` as a child process on the session's Valkey and Postgres: its log output
and its memory are its own (the in-process test apps share the test runner's)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from omnistock.embedded import free_port
from tests.conftest import Servers
from tests.e2e.conftest import ADMIN_KEY, app_redis_url


class ServedProcess:
    def __init__(self, proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.proc, self.port, self.log = proc, port, log
        self.url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}/v1/stream"

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def _start(port: int, environ: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "omnistock", "serve", "--port", str(port)],
            env=environ,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )


@contextlib.asynccontextmanager
async def served(
    servers: Servers, log: Path, admin_key: str = ADMIN_KEY, **env: str
) -> AsyncIterator[ServedProcess]:
    """A ready ``omnistock serve`` (one worker) with ``OMNISTOCK_*`` ``env``; all of its output
    goes to ``log``. SIGTERM on exit; its status must be 0."""
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("OMNISTOCK_")}
    environ.update(
        OMNISTOCK_REDIS_URL=app_redis_url(servers),
        OMNISTOCK_DATABASE_URL=servers.database_url,
        OMNISTOCK_ADMIN_KEY=admin_key,
        **{f"OMNISTOCK_{k.upper()}": v for k, v in env.items()},
    )
    proc = _start(port, environ, log)
    found = ServedProcess(proc, port, log)
    try:
        deadline = time.monotonic() + 90
        async with httpx.AsyncClient(base_url=found.url) as client:
            while True:
                assert proc.poll() is None, f"serve exited:\n{found.output()}"
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get("/readyz")).status_code == 200:
                        break
                assert time.monotonic() < deadline, f"serve not ready:\n{found.output()}"
                await asyncio.sleep(0.2)
        yield found
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(proc.wait, 60)
            except subprocess.TimeoutExpired:
                proc.kill()
                raise
    assert proc.returncode == 0, found.output()
