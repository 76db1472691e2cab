"""The servers a bench run starts: embedded Valkey and Postgres, omnistock, the row-lock baseline."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

from omnistock.embedded import EmbeddedPostgres, EmbeddedValkey, free_port

OMNISTOCK = str(Path(sys.executable).with_name("omnistock"))  # the console script of this venv
# Rate limits the load never reaches (a bucket of 10^9 per second per key): the bench measures
# the service with its limiter running, not throttled; "Rate limit cost" compares with "off".
BENCH_RATE_LIMITS = ",".join(
    f"{role}=1000000000/1s" for role in ("admin", "integration", "store", "storefront", "feed")
)


def pinned(cpus: str | None, command: Sequence[str]) -> list[str]:
    """``command`` run on the given cpus (``taskset -c``), or as is."""
    return ["taskset", "-c", cpus, *command] if cpus else list(command)


class Stack:
    """Valkey and Postgres in a temporary directory, with the environment omnistock reads."""

    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="omnistock-bench-"))
        self.valkey = EmbeddedValkey(self.base / "valkey")
        self.postgres = EmbeddedPostgres(self.base / "postgres")
        self.processes: list[subprocess.Popen[bytes]] = []
        self.serve_pid = 0  # the main ``omnistock serve`` (its workers are its children)
        self.workers = 1

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "OMNISTOCK_REDIS_URL": self.valkey.url,
            "OMNISTOCK_DATABASE_URL": self.postgres.url,
            "OMNISTOCK_DATA_DIR": str(self.base / "data"),
            "OMNISTOCK_LOG_LEVEL": "warning",
            "OMNISTOCK_RATE_LIMITS": BENCH_RATE_LIMITS,
        }

    def start(self) -> None:
        self.valkey.start()
        self.postgres.start()
        self.omnistock("migrate")

    def omnistock(self, *args: str) -> str:
        """Run an ``omnistock`` CLI command against these servers; its stdout."""
        done = subprocess.run(
            [OMNISTOCK, *args],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode:
            raise RuntimeError(f"omnistock {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout.strip()

    def serve(self, workers: int, cpus: str | None) -> str:
        """Start ``omnistock serve``; its base URL once it is ready."""
        self.workers = workers
        url = self.serve_another(workers, cpus)
        self.serve_pid = self.processes[-1].pid  # taskset execs the command: the same process
        return url

    def serve_another(self, workers: int, cpus: str | None, **env: str) -> str:
        """Start one more ``omnistock serve`` (``env``: extra ``OMNISTOCK_*`` settings)."""
        port = free_port()
        command = [OMNISTOCK, "serve", "--port", str(port), "--workers", str(workers)]
        return self._spawn(pinned(cpus, command), port, "/readyz", env)

    def retire(self, proc: subprocess.Popen[bytes]) -> None:
        """Stop one of the processes started here before the rest."""
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        self.processes.remove(proc)

    def serve_baseline(self, workers: int, cpus: str | None) -> str:
        """Start the Postgres row-lock baseline on the same Postgres; its base URL."""
        port = free_port()
        command = [
            sys.executable,
            *("-m", "loadtests.baselines.pg_rowlock", "serve"),
            *("--database-url", self.postgres.url, "--port", str(port)),
            *("--workers", str(workers)),
        ]
        return self._spawn(pinned(cpus, command), port, "/healthz")

    def _spawn(
        self, command: list[str], port: int, ready: str, env: Mapping[str, str] | None = None
    ) -> str:
        log = (self.base / f"server-{port}.log").open("wb")
        proc = subprocess.Popen(
            command, env={**self.env, **(env or {})}, stdout=log, stderr=subprocess.STDOUT
        )
        self.processes.append(proc)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{command[0]} exited: see {log.name}")
            try:
                if httpx.get(url + ready, timeout=2).status_code == 200:
                    return url
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{' '.join(command)} not ready after 120 s: see {log.name}")

    def stop(self) -> None:
        for proc in self.processes:
            proc.terminate()
        for proc in self.processes:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.postgres.stop()
        self.valkey.stop()
        shutil.rmtree(self.base, ignore_errors=True)


@contextmanager
def running() -> Iterator[Stack]:
    """A started :class:`Stack`, stopped (processes and files) on the way out."""
    stack = Stack()
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
