"""The commands themselves: ``omnistock serve --demo`` on a fresh data directory (embedded Valkey
and Postgres), ``omnistock keys create`` beside it, SIGTERM leaving no process behind, and the data
surviving a restart."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from omnistock.embedded import free_port

OMNISTOCK = str(Path(sys.executable).parent / "omnistock")


def clean_env(data_dir: Path) -> dict[str, str]:
    """The environment of a new user: no store URLs, no admin key, only a data directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNISTOCK_")}
    env["OMNISTOCK_DATA_DIR"] = str(data_dir)
    env["OMNISTOCK_LOG_LEVEL"] = "warning"
    return env


def processes_using(needle: str) -> list[str]:
    """Command lines of live processes that mention ``needle`` (our data directory)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = next(
                line
                for line in (entry / "status").read_text().splitlines()
                if line.startswith("State:")
            )
        except (OSError, StopIteration):
            continue
        if needle in cmdline and "zombie" not in state:
            found.append(f"{entry.name}: {cmdline}")
    return found


class Served:
    """``omnistock serve`` running as a child process."""

    def __init__(self, data_dir: Path, out: Path, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.out = out
        with open(out, "wb") as sink:
            self.proc = subprocess.Popen(
                [OMNISTOCK, "serve", "--port", str(self.port), *args],
                env=clean_env(data_dir),
                stdout=sink,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"serve exited early:\n{self.out.read_text()}"
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"not ready in {timeout}s:\n{self.out.read_text()}")

    def admin_key(self) -> str:
        match = re.search(r"demo admin key: (\S+)", self.out.read_text())
        assert match, self.out.read_text()
        return match.group(1)

    def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "omnistock-data"
    yield path
    # Whatever happened, never leave servers running.
    for line in processes_using(str(path)):
        os.kill(int(line.split(":", 1)[0]), signal.SIGKILL)


def test_serve_demo_keys_sigterm_and_restart(data_dir: Path, tmp_path: Path) -> None:
    first = Served(data_dir, tmp_path / "serve1.log", "--demo")
    try:
        first.wait_ready()
        admin = {"Authorization": f"Bearer {first.admin_key()}"}
        with httpx.Client(base_url=first.url, headers=admin, timeout=30) as http:
            locations = http.get("/v1/locations").json()["items"]
            assert len(locations) >= 20
            assert {"wh-joliet", "chi-loop"} <= {x["id"] for x in locations}
            assert http.get("/v1/locations", params={"group": "pickup"}).json()["items"]
            assert http.get("/v1/availability/HOODIE-NVY-M").json()["total_available"] > 0
            put = http.put("/v1/stock/chi-loop/HOODIE-NVY-M", json={"on_hand": 77})
            assert put.status_code == 200

        made = subprocess.run(
            [OMNISTOCK, "keys", "create", "--role", "feed", "feed-exporter"],
            env=clean_env(data_dir),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert made.returncode == 0, made.stderr
        secret = made.stdout.strip().splitlines()[-1]
        assert secret.startswith("osk_")
        feed = {"Authorization": f"Bearer {secret}"}
        with httpx.Client(base_url=first.url, headers=feed, timeout=30) as http:
            assert http.get("/v1/stock/chi-loop/HOODIE-NVY-M").json()["on_hand"] == 77
            assert (
                http.put("/v1/stock/chi-loop/HOODIE-NVY-M", json={"on_hand": 1}).status_code == 403
            )
    finally:
        code = first.terminate()
    assert code == 0, first.out.read_text()
    assert processes_using(str(data_dir)) == []

    second = Served(data_dir, tmp_path / "serve2.log")
    try:
        second.wait_ready()
        with httpx.Client(base_url=second.url, headers=admin, timeout=30) as http:
            pos = http.get("/v1/stock/chi-loop/HOODIE-NVY-M").json()
            assert pos["on_hand"] == 77
            assert len(http.get("/v1/locations").json()["items"]) == len(locations)
        with httpx.Client(base_url=second.url, headers=feed, timeout=30) as http:
            assert http.get("/v1/stock/chi-loop/HOODIE-NVY-M").status_code == 200
    finally:
        code = second.terminate()
    assert code == 0, second.out.read_text()
    assert processes_using(str(data_dir)) == []
