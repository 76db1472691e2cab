"""Defect 8 against a real ``omnistock serve`` (its own protocol, embedded stores): headers past the
limit are a 431, a request that does not arrive in time is a 408 or a closed connection. Raw
sockets, since an HTTP client would not misbehave on purpose. The arrival deadline is shortened to
2 s here (``OMNISTOCK_HTTP_REQUEST_TIMEOUT_SECONDS``; 30 s by default)."""

from __future__ import annotations

import json
import os
import secrets
import select
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import asyncpg
import httpx
import pytest
import redis

from tests.conftest import private_dir
from tests.e2e.test_commands import OMNISTOCK, Served, clean_env, processes_using

TIMEOUT = 2.0
SLACK = 4.0  # a loaded machine may be late by this much, never early
ADMIN = "osk_guard_admin_" + secrets.token_hex(8)
METRICS_KEY = "metrics-" + secrets.token_hex(8)


class GuardedServe(Served):
    """``omnistock serve`` with a short arrival deadline, a metrics key and a bootstrap admin."""

    def __init__(self, data_dir: Path, log: Path) -> None:
        extra = {
            "OMNISTOCK_HTTP_REQUEST_TIMEOUT_SECONDS": str(TIMEOUT),
            "OMNISTOCK_ADMIN_KEY": ADMIN,
            "OMNISTOCK_METRICS_KEY": METRICS_KEY,
        }
        super().__init__(data_dir, log, env=extra)
        self.data_dir = data_dir
        self.log = log

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=TIMEOUT + SLACK + 5)


@pytest.fixture(scope="module")
def served() -> Iterator[GuardedServe]:
    with private_dir("omnistock-guards-") as base:
        yield from _serve(base)


def _serve(base: Path) -> Iterator[GuardedServe]:
    data_dir = base / "data"
    server = GuardedServe(data_dir, base / "serve.log")
    try:
        server.wait_ready()
        yield server
    finally:
        server.proc.send_signal(signal.SIGTERM)
        try:
            server.proc.wait(60)
        except subprocess.TimeoutExpired:
            server.proc.kill()
        for line in processes_using(str(data_dir)):
            os.kill(int(line.split(":", 1)[0]), signal.SIGKILL)


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    out = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return out
        if not chunk:
            return out
        out += chunk


def parse(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


def assert_problem(raw: bytes, status: int) -> dict[str, object]:
    got, headers, body = parse(raw)
    assert got == status, raw[:500]
    assert headers["content-type"].startswith("application/problem+json"), headers
    problem = json.loads(body)
    assert problem["status"] == status and problem["detail"], problem
    return dict(problem)


def test_headers_past_64_kib_are_431(served: GuardedServe) -> None:
    # 70 headers of 1 KiB: complete headers, in one write.
    filler = "".join(f"X-Fill-{i}: {'a' * 1000}\r\n" for i in range(70))
    with served.connect() as sock:
        sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: x\r\n{filler}\r\n".encode())
        raw = read_all(sock)  # and the connection is closed
    body = assert_problem(raw, 431)
    assert "65536" in str(body["detail"])
    # Just under the limit is fine.
    filler = "".join(f"X-Fill-{i}: {'a' * 1000}\r\n" for i in range(60))
    with served.connect() as sock:
        sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: x\r\n{filler}\r\n".encode())
        assert parse(sock.recv(65536))[0] == 200


def test_one_endless_header_is_cut_off_at_the_limit(served: GuardedServe) -> None:
    """A single header that never ends (16 MB were accepted before): a 431 long before the end
    (what was sent but not answered yet sits in the two kernels' socket buffers)."""
    sent = 0
    with served.connect() as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
        answered = False
        while sent < 16 * 1024 * 1024:
            if select.select([sock], [], [], 0.001)[0]:
                answered = True
                break
            try:
                sock.sendall(b"a" * 16384)
            except (BrokenPipeError, ConnectionResetError):
                answered = True
                break
            sent += 16384
        assert answered, "16 MB of one header were taken without an answer"
        raw = read_all(sock)
    assert_problem(raw, 431)


def test_slow_headers_get_408_at_the_deadline(served: GuardedServe) -> None:
    with served.connect() as sock:
        started = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        # One header byte every 0.2 s: each byte alone is quick, the headers never end.
        sock.setblocking(False)
        raw = b""
        while time.monotonic() - started < TIMEOUT + SLACK:
            try:
                sock.send(b"X")
            except OSError:
                break
            time.sleep(0.2)
            try:
                chunk = sock.recv(65536)
            except BlockingIOError:
                continue
            except ConnectionResetError:
                break
            raw += chunk
            if not chunk:
                break
        elapsed = time.monotonic() - started
        sock.setblocking(True)
        raw += read_all(sock)
    assert TIMEOUT - 0.2 <= elapsed <= TIMEOUT + SLACK, elapsed
    assert_problem(raw, 408)


def test_idle_connection_is_closed(served: GuardedServe) -> None:
    with served.connect() as sock:
        started = time.monotonic()
        assert read_all(sock) == b""
        elapsed = time.monotonic() - started
    assert TIMEOUT - 0.2 <= elapsed <= TIMEOUT + SLACK, elapsed


def test_half_a_body_gets_408_at_the_deadline(served: GuardedServe) -> None:
    body = b'{"adjustments": [' + b" " * 600
    with served.connect() as sock:
        started = time.monotonic()
        sock.sendall(
            b"POST /v1/adjustments HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + ADMIN.encode() + b"\r\nContent-Length: 1200\r\n\r\n" + body
        )
        raw = read_all(sock)  # the 408, then the connection closes
        elapsed = time.monotonic() - started
    assert TIMEOUT - 0.2 <= elapsed <= TIMEOUT + SLACK, elapsed
    problem = assert_problem(raw, 408)
    assert problem["type"] == "urn:omnistock:problem:request-timeout"
    assert parse(raw)[1]["connection"] == "close"


def test_body_dribbled_after_an_early_answer_is_cut_off(served: GuardedServe) -> None:
    """No key: the 401 goes out at once; the body still owed may not hold the connection."""
    with served.connect() as sock:
        started = time.monotonic()
        sock.sendall(
            b"POST /v1/adjustments HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100000\r\n\r\n{"
        )
        sock.setblocking(False)
        raw = b""
        closed = False
        while time.monotonic() - started < TIMEOUT + SLACK:
            try:
                sock.send(b" ")  # a byte every 0.2 s restarts uvicorn's own keep-alive timer
            except OSError:
                closed = True
                break
            time.sleep(0.2)
            try:
                chunk = sock.recv(65536)
            except BlockingIOError:
                continue
            except ConnectionResetError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            raw += chunk
        elapsed = time.monotonic() - started
    assert closed, f"still open after {elapsed:.1f}s"
    assert elapsed <= TIMEOUT + SLACK, elapsed
    assert_problem(raw, 401)


def test_normal_and_pipelined_requests_still_work(served: GuardedServe) -> None:
    with served.connect() as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" * 2 + b"GET /healthz HTTP/1.1\r\n")
        sock.sendall(b"Host: x\r\nConnection: close\r\n\r\n")
        raw = read_all(sock)
    assert raw.count(b"HTTP/1.1 200 OK") == 3, raw
    with httpx.Client(base_url=served.url, timeout=30) as http:
        for _ in range(3):
            assert http.get("/healthz").status_code == 200


# Embedded stores: reachable only by this service.


def run_info(served: GuardedServe) -> dict[str, str]:
    return dict(json.loads((served.data_dir / "run.json").read_text()))


def test_embedded_valkey_wants_the_generated_password(served: GuardedServe) -> None:
    url = urlparse(run_info(served)["redis_url"])
    assert url.hostname == "127.0.0.1" and url.password
    assert url.password == (served.data_dir / "valkey.password").read_text().strip()
    for secret in ("valkey.password", "postgres.password", "run.json"):
        assert stat.S_IMODE((served.data_dir / secret).stat().st_mode) == 0o600, secret
    log = served.log.read_text()
    assert "embedded valkey on redis://:***@127.0.0.1" in log
    for secret_file in ("valkey.password", "postgres.password"):
        assert (served.data_dir / secret_file).read_text().strip() not in log
    for password in (None, "wrong"):
        client = redis.Redis(host="127.0.0.1", port=url.port, password=password)
        with pytest.raises(redis.AuthenticationError):
            client.ping()
        client.close()
    client = redis.Redis.from_url(url.geturl())
    try:
        assert client.ping()
        assert client.config_get("bind")["bind"] == "127.0.0.1"
        assert client.config_get("port")["port"] == str(url.port)
    finally:
        client.close()


async def test_embedded_postgres_wants_the_password(served: GuardedServe) -> None:
    url = urlparse(run_info(served)["database_url"])
    assert url.hostname == "127.0.0.1" and url.password
    assert url.password == (served.data_dir / "postgres.password").read_text().strip()
    for password in (None, "wrong"):
        with pytest.raises(asyncpg.InvalidPasswordError):
            await asyncpg.connect(
                host="127.0.0.1",
                port=url.port,
                user="postgres",
                password=password,
                database="omnistock",
            )
    conn = await asyncpg.connect(url.geturl())
    try:
        assert await conn.fetchval("SHOW listen_addresses") == "127.0.0.1"
        assert await conn.fetchval("SHOW unix_socket_directories") == ""
        rules = await conn.fetch("SELECT type, auth_method FROM pg_hba_file_rules")
        assert rules and {r["auth_method"] for r in rules} == {"scram-sha-256"}, rules
    finally:
        await conn.close()


def test_cli_commands_attach_with_the_passwords(served: GuardedServe) -> None:
    """``reconcile`` finds the running servers through run.json, passwords included."""
    done = subprocess.run(
        [OMNISTOCK, "reconcile"],
        env=clean_env(served.data_dir),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "no drift" in done.stdout
    with httpx.Client(base_url=served.url, timeout=30) as http:
        headers = {"Authorization": f"Bearer {ADMIN}"}
        assert http.get("/v1/locations", headers=headers).status_code == 200


def test_many_slow_clients_are_all_cut_off_and_others_served(served: GuardedServe) -> None:
    """100 connections at once that never finish their headers (or their body): each gets its
    408 (or is closed) by the deadline, while ordinary requests keep being answered meanwhile."""
    slow: list[socket.socket] = []
    try:
        started = time.monotonic()
        for i in range(100):
            sock = served.connect()
            if i % 2:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            else:
                sock.sendall(
                    b"POST /v1/adjustments HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
                    b"Content-Type: application/json\r\nAuthorization: Bearer "
                    + ADMIN.encode()
                    + b"\r\n\r\n{"
                )
            slow.append(sock)
        with httpx.Client(base_url=served.url, timeout=10) as http:
            for _ in range(20):
                assert http.get("/healthz").status_code == 200
        answers = [read_all(sock) for sock in slow]
        elapsed = time.monotonic() - started
    finally:
        for sock in slow:
            sock.close()
    assert elapsed <= TIMEOUT + SLACK, elapsed
    assert [parse(raw)[0] for raw in answers] == [408] * 100
