"""The commands themselves: ``omnistock serve --demo`` on a fresh data directory (embedded Valkey
and Postgres), ``omnistock keys create`` beside it, SIGTERM leaving no process behind, and the data
surviving a restart; ``serve`` running exactly one worker process (whatever ``--workers``) and
stopping it, and ``omnistock worker`` doing the background work beside ``serve --no-worker``."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
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

    def __init__(
        self, data_dir: Path, out: Path, *args: str, env: dict[str, str] | None = None
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.out = out
        with open(out, "wb") as sink:
            self.proc = subprocess.Popen(
                [OMNISTOCK, "serve", "--port", str(self.port), *args],
                env={**clean_env(data_dir), **(env or {})},
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


def descendants(pid: int) -> list[psutil.Process]:
    return list(psutil.Process(pid).children(recursive=True))


def worker_children(procs: list[psutil.Process]) -> list[psutil.Process]:
    """The ``omnistock worker`` processes among ``procs``."""
    found = []
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            cmdline = proc.cmdline()
            if cmdline[-1:] == ["worker"] and any("omnistock" in part for part in cmdline):
                found.append(proc)
    return found


def still_running(procs: list[psutil.Process], within: float = 10.0) -> list[str]:
    """Those of ``procs`` still running (not zombies) after waiting up to ``within`` seconds."""
    _, alive = psutil.wait_procs(procs, timeout=within)
    running = []
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            if proc.status() != psutil.STATUS_ZOMBIE:
                running.append(f"{proc.pid}: {' '.join(proc.cmdline())}")
    return running


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
        children = descendants(first.proc.pid)
        assert len(worker_children(children)) == 1
    finally:
        code = first.terminate()
    assert code == 0, first.out.read_text()
    assert processes_using(str(data_dir)) == []
    assert still_running(children) == []

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


def test_serve_runs_one_worker_child_and_sigint_stops_everything(
    data_dir: Path, tmp_path: Path
) -> None:
    served = Served(data_dir, tmp_path / "serve.log", "--workers", "2")
    try:
        served.wait_ready()  # ready: a worker has reported its loops
        children = descendants(served.proc.pid)
        workers = worker_children(children)
        assert len(workers) == 1, [p.cmdline() for p in children]
        assert workers[0].ppid() == served.proc.pid
        body = httpx.get(f"{served.url}/metrics", timeout=10).text
        assert "omnistock_workers_alive 1" in body
        # A worker process that dies is started again (one, still).
        workers[0].kill()
        deadline = time.monotonic() + 30
        while True:
            again = worker_children(descendants(served.proc.pid))
            if again and again[0].pid != workers[0].pid:
                break
            assert time.monotonic() < deadline, "the worker process was not started again"
            time.sleep(0.1)
        assert len(again) == 1
        children = descendants(served.proc.pid)
        served.wait_ready(30)
    finally:
        served.proc.send_signal(signal.SIGINT)
        code = served.proc.wait(60)
    assert code == 0, served.out.read_text()
    assert still_running(children) == []
    assert processes_using(str(data_dir)) == []


def test_omnistock_worker_does_the_background_work_beside_serve_no_worker(
    data_dir: Path, tmp_path: Path
) -> None:
    admin_key = "osk_test_admin_" + "w" * 16
    extra = {"OMNISTOCK_ADMIN_KEY": admin_key, "OMNISTOCK_WORKER_STALE_SECONDS": "2"}
    served = Served(data_dir, tmp_path / "serve.log", "--no-worker", env=extra)
    worker: subprocess.Popen[bytes] | None = None
    try:
        deadline = time.monotonic() + 120
        while True:  # up, but not ready: no worker
            assert served.proc.poll() is None, served.out.read_text()
            with contextlib.suppress(httpx.TransportError):
                ready = httpx.get(f"{served.url}/readyz", timeout=2)
                if ready.json().get("detail", "").startswith("worker down"):
                    break
            assert time.monotonic() < deadline, served.out.read_text()
            time.sleep(0.2)
        assert ready.status_code == 503 and "no live worker" in ready.json()["detail"]
        assert worker_children(descendants(served.proc.pid)) == []

        with open(tmp_path / "worker.log", "wb") as sink:
            worker = subprocess.Popen(
                [OMNISTOCK, "worker"],
                env={**clean_env(data_dir), **extra},
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        served.wait_ready(60)
        admin = {"Authorization": f"Bearer {admin_key}"}
        with httpx.Client(base_url=served.url, headers=admin, timeout=30) as http:
            assert http.put("/v1/locations/w1", json={"name": "W", "kind": "store"}).is_success
            item = {"sku": "s", "location": "w1", "delta": 5, "reason": "receipt", "ref": "in"}
            assert http.post("/v1/adjustments", json={"adjustments": [item]}).status_code == 200
            body = {"location": "w1", "lines": [{"sku": "s", "qty": 2}], "ttl_seconds": 1}
            held = http.post("/v1/reservations", json=body)
            assert held.status_code == 201, held.text
            rid = held.json()["id"]
            deadline = time.monotonic() + 15
            while http.get(f"/v1/reservations/{rid}").json()["status"] != "expired":
                assert time.monotonic() < deadline, "not expired by the worker"
                time.sleep(0.1)
            position = http.get("/v1/stock/w1/s").json()
            assert (position["on_hand"], position["reserved"]) == (5, 0)
            # The ledger (Postgres) has all three events: the worker's persister wrote them.
            deadline = time.monotonic() + 15
            while True:
                items = http.get("/v1/stock/w1/s/history").json()["items"]
                kinds = sorted(entry["kind"] for entry in items)
                if len(kinds) == 3:
                    break
                assert time.monotonic() < deadline, kinds
                time.sleep(0.1)
            assert [entry["reservation_id"] for entry in items[:2]] == [rid, rid]
            assert items[-1]["ref"] == "in"

        worker.send_signal(signal.SIGTERM)
        assert worker.wait(60) == 0, (tmp_path / "worker.log").read_text()
        ready = httpx.get(f"{served.url}/readyz", timeout=10)
        assert ready.status_code == 503 and "worker" in ready.json()["detail"]
    finally:
        if worker is not None and worker.poll() is None:
            worker.kill()
        code = served.terminate()
    assert code == 0, served.out.read_text()
    assert processes_using(str(data_dir)) == []
