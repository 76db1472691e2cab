"""A local Valkey Cluster for the cluster tier, from the same valkey-server binary the embedded
default uses: N primaries (and R replicas each) on free loopback ports, with a password."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import time
from pathlib import Path

from omnistock.embedded import die_with_parent, free_port, valkey_binary


class Node:
    """One cluster node (its own folder, client port and cluster bus port)."""

    def __init__(self, directory: Path, password: str, extra: tuple[str, ...] = ()) -> None:
        self.directory = directory
        self.password = password
        self.extra = extra
        self.port = free_port()
        self.bus_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        conf = self.directory / "auth.conf"
        fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(f"requirepass {self.password}\nmasterauth {self.password}\n")
        # A port picked free may be taken (by a client's ephemeral port) before the node binds
        # it: the node then exits at once, and is started again on other ports.
        for _ in range(3):
            if self._spawn(conf):
                return
            self.port, self.bus_port = free_port(), free_port()
        raise RuntimeError(f"cluster node on port {self.port} did not start")

    def _spawn(self, conf: Path) -> bool:
        """Start the node on its ports; False if it exited before listening (a port taken)."""
        args = [
            str(valkey_binary()),
            str(conf),
            "--port", str(self.port),
            "--cluster-port", str(self.bus_port),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--daemonize", "no",
            "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", "1000",
            "--appendonly", "no",
            "--save", "",
            "--logfile", str(self.directory / "valkey.log"),
            "--repl-diskless-sync-delay", "0",  # replicas in sync at once, not after 5 s
            *self.extra,
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, preexec_fn=die_with_parent
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.2):
                    return True
            except OSError:
                if self.proc.poll() is not None:
                    return False
                time.sleep(0.05)
        raise RuntimeError(f"cluster node on port {self.port} did not start")

    def kill(self) -> None:
        """Kill -9, as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


class LocalCluster:
    """``primaries`` primaries with ``replicas`` replicas each, created with ``valkey-cli
    --cluster create``; :attr:`url` is the ``redis+cluster://`` URL omnistock takes."""

    def __init__(
        self, base: Path, primaries: int = 3, replicas: int = 0, extra: tuple[str, ...] = ()
    ) -> None:
        self.password = secrets.token_hex(12)
        self.replicas = replicas
        self.nodes = [
            Node(base / f"node{i}", self.password, extra) for i in range(primaries * (1 + replicas))
        ]

    @property
    def url(self) -> str:
        hosts = ",".join(node.address for node in self.nodes)
        return f"redis+cluster://:{self.password}@{hosts}"

    def cli(self, *args: str, timeout: float = 60) -> str:
        """Run valkey-cli (the password in its environment, never on its command line)."""
        env = {**os.environ, "REDISCLI_AUTH": self.password, "VALKEYCLI_AUTH": self.password}
        done = subprocess.run(
            [str(valkey_binary().parent / "valkey-cli"), *args],
            env=env,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"valkey-cli {args[:2]} failed: {done.stdout!r} {done.stderr!r}")
        return done.stdout.decode()

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        self.cli(
            "--cluster", "create", *(n.address for n in self.nodes),
            "--cluster-replicas", str(self.replicas), "--cluster-yes",
        )  # fmt: skip
        self.wait_ok()

    def node_at(self, address: str) -> Node:
        """The node listening at ``host:port``."""
        return next(n for n in self.nodes if n.address == address)

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Until every live node says the cluster is ok and every replica is in sync."""
        deadline = time.monotonic() + timeout
        while True:
            states = []
            for node in self.nodes:
                if node.proc is None or node.proc.poll() is not None:
                    continue
                info = self.cli("-p", str(node.port), "cluster", "info")
                states.append("cluster_state:ok" in info)
                # A replica counts once it holds its primary's data (it can be promoted).
                replication = self.cli("-p", str(node.port), "info", "replication")
                if "role:slave" in replication:
                    states.append("master_link_status:up" in replication)
            if all(states):
                return
            if time.monotonic() > deadline:
                raise RuntimeError("the cluster did not become ok")
            time.sleep(0.1)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
