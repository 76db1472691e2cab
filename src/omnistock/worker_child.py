"""The worker process ``serve`` runs beside its server: one ``omnistock worker`` child, started
again (with backoff) if it ever exits, stopped with the server."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import threading
import time

from omnistock.embedded import die_with_parent

log = logging.getLogger("omnistock.worker")


class WorkerChild:
    """Keeps one ``omnistock worker`` child running until :meth:`stop`. It gets this process's
    environment (the store URLs ``serve`` set) and dies with it (PR_SET_PDEATHSIG, bound to the
    thread that started it: the watching thread, alive until :meth:`stop`)."""

    def __init__(self, backoff_initial: float = 0.5, backoff_max: float = 30.0) -> None:
        self.backoff_initial, self.backoff_max = backoff_initial, backoff_max
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="omnistock-worker", daemon=True)

    def start(self) -> None:
        """Start the child (returns once it is started)."""
        self._thread.start()
        self._started.wait()

    def _watch(self) -> None:
        delay = self.backoff_initial
        while True:
            with self._lock:
                if self._stopping.is_set():
                    break
                self.proc = subprocess.Popen(
                    [sys.executable, "-m", "omnistock", "worker"], preexec_fn=die_with_parent
                )
                self.starts += 1
                started = time.monotonic()
            self._started.set()
            code = self.proc.wait()
            if self._stopping.is_set():
                break
            if time.monotonic() - started > 60:
                delay = self.backoff_initial  # it had run well: start the backoff afresh
            log.error("the worker process exited (status %s); starting it again", code)
            if self._stopping.wait(delay):
                break
            delay = min(delay * 2, self.backoff_max)
        self._started.set()

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM the child and wait for it to finish its persister batch (SIGKILL past
        ``timeout``); no restart after this."""
        with self._lock:
            self._stopping.set()
            proc = self.proc
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._thread.join(timeout)
