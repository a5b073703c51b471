"""Child processes of the CLI: the queue consumer of `serve` (supervised), the service of
`demo`."""

from __future__ import annotations

import logging
import signal
import subprocess
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


def stop_gracefully(process: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    """SIGINT first, which lets a consumer finish its job and `serve` stop its own consumer;
    SIGKILL only if that hangs."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class Supervisor:
    """Keeps one child process running: started again after it exits, with a backoff that
    doubles from `backoff_s` to `backoff_max_s` while it keeps dying young, and resets once a
    run lasted `healthy_after_s`. Each restart is logged at WARNING with the exit status."""

    def __init__(self, start: Callable[[], subprocess.Popen[bytes]], name: str, *,
                 on_exit: Callable[[subprocess.Popen[bytes]], None] | None = None,
                 backoff_s: float = 1.0, backoff_max_s: float = 30.0,
                 healthy_after_s: float = 60.0) -> None:
        self._start = start
        self.name = name
        self._on_exit = on_exit
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.healthy_after_s = healthy_after_s
        self.restarts = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._watch, name=f"supervise-{name}",
                                        daemon=True)

    def start(self) -> None:
        with self._lock:
            self.process = self._start()
        self._thread.start()

    def _watch(self) -> None:
        delay = self.backoff_s
        while True:
            with self._lock:
                process = self.process
            if process is None:
                return
            started = time.monotonic()
            code = process.wait()
            if self._stopping.is_set():
                return
            lived = time.monotonic() - started
            if lived >= self.healthy_after_s:
                delay = self.backoff_s
            self.restarts += 1
            log.warning("%s (pid %s) exited with status %s after %.1f s; restart %d in %.2f s",
                        self.name, process.pid, code, lived, self.restarts, delay)
            if self._on_exit is not None:
                try:
                    self._on_exit(process)
                except Exception:  # the database may be down too: the leases expire anyway
                    log.exception("cleaning up after %s (pid %s) failed", self.name,
                                  process.pid)
            if self._stopping.wait(delay):
                return
            delay = min(self.backoff_max_s, delay * 2)
            with self._lock:
                if self._stopping.is_set():
                    return
                try:
                    self.process = self._start()
                except OSError:
                    log.exception("starting %s failed; trying again", self.name)
                    self.process = process  # wait() on it returns at once: the loop retries
            log.warning("%s restarted (pid %s)", self.name, self.process.pid)

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop supervising, then stop the child like `stop_gracefully`."""
        with self._lock:
            self._stopping.set()
            process = self.process
        if process is not None:
            stop_gracefully(process, timeout_s=timeout_s)
        self._thread.join(timeout=5)
