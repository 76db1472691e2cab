"""A standalone Valkey primary (the embedded one: AOF everysec, password) with one replica of it
(``--replicaof``), from the same valkey-server binary: for OMNISTOCK_REDIS_WAIT_REPLICAS's tests
(tests/e2e/test_wait_replicas.py, tests/integration/test_wait_connection.py) and its cost
(loadtests/wait_cost.py, the bench's WAIT row)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from omnistock.embedded import EmbeddedValkey, die_with_parent, free_port, valkey_binary


class ReplicaPair:
    """``primary`` (an :class:`EmbeddedValkey`) and a replica process on its own port."""

    def __init__(self, base: Path, *, appendonly: bool = True) -> None:
        self.base = base
        self.primary = EmbeddedValkey(base / "primary")
        self.replica_port = free_port()
        self.appendonly = appendonly
        self.replica: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return self.primary.url

    @property
    def replica_url(self) -> str:
        return f"redis://:{self.primary.password}@127.0.0.1:{self.replica_port}/0"

    @contextmanager
    def running(self) -> Iterator[ReplicaPair]:
        """Both started for the ``with`` block and stopped after it."""
        self.start()
        try:
            yield self
        finally:
            self.stop()

    def start(self) -> None:
        """Start both and wait until the replica is in sync."""
        self.primary.start()
        self.start_replica()

    def start_replica(self) -> None:
        """(Re)start the replica and wait until the primary counts it online."""
        client = redis.Redis.from_url(self.url)
        client.config_set("repl-diskless-sync-delay", 0)  # in sync at once, not after 5 s
        client.close()
        directory = self.base / "replica"
        directory.mkdir(parents=True, exist_ok=True)
        conf = directory / "auth.conf"
        fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            password = self.primary.password
            out.write(f"requirepass {password}\nmasterauth {password}\n")
        self.replica = subprocess.Popen(
            [str(valkey_binary()), str(conf), "--port", str(self.replica_port),
             "--bind", "127.0.0.1", "--dir", str(directory), "--daemonize", "no",
             "--replicaof", "127.0.0.1", str(self.primary.port),
             "--appendonly", "yes" if self.appendonly else "no", "--appendfsync", "everysec",
             "--save", "", "--repl-diskless-sync-delay", "0",
             "--logfile", str(directory / "valkey.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, preexec_fn=die_with_parent,
        )  # fmt: skip
        self.wait_replicas(1)

    def wait_replicas(self, count: int, timeout: float = 30.0) -> None:
        """Until the primary reports ``count`` replicas online."""
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                info = client.info("replication")
                online = sum(
                    1
                    for k, v in info.items()
                    if k.startswith("slave") and isinstance(v, dict) and v.get("state") == "online"
                )
                if online >= count:
                    return
                time.sleep(0.05)
        finally:
            client.close()
        raise RuntimeError(f"primary has not {count} replica(s) online after {timeout}s")

    def pause_replica(self) -> None:
        """SIGSTOP: the replica neither applies nor acknowledges (a hung or partitioned one)."""
        assert self.replica is not None
        self.replica.send_signal(signal.SIGSTOP)

    def resume_replica(self) -> None:
        assert self.replica is not None
        self.replica.send_signal(signal.SIGCONT)

    def stop_replica(self) -> None:
        if self.replica is not None and self.replica.poll() is None:
            self.replica.send_signal(signal.SIGCONT)
            self.replica.kill()
            self.replica.wait()

    def stop(self) -> None:
        self.stop_replica()
        self.primary.stop()
