"""Helpers shared by the fault tests (test_faults.py) and the liveness tests (test_liveness.py):
settings derived afresh, uploads and submission rows, one snapshot of a job's state, polling with
a deadline, and a redis-server of a test's own."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, insert, text

from app.config import Settings
from app.models import Submission
from app.storage import ArtifactStore
from evaluator.scoring import SCORER_VERSION


def derive(settings: Settings, **changes: Any) -> Settings:
    """A fresh Settings (no cached paths carried over) with `changes` applied."""
    return Settings(**{**settings.model_dump(), **changes})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def job(engine: Engine, sid: int) -> tuple[str, int, int]:
    """(state, attempts, score rows of the installed scorer) in one statement, one snapshot."""
    with engine.connect() as conn:
        row = conn.execute(text(
            "SELECT state, attempts, (SELECT count(*) FROM score WHERE submission_id = :id "
            "AND scorer_version = :v) FROM submission WHERE id = :id"),
            {"id": sid, "v": SCORER_VERSION}).one()
    return str(row[0]), int(row[1]), int(row[2])


def insert_submission(settings: Settings, engine: Engine, team_id: int, body: bytes) -> int:
    sha = ArtifactStore.of(settings).put_bytes(body)
    with engine.begin() as conn:
        return int(conn.execute(
            insert(Submission).values(
                team_id=team_id, country="NL", method="m", state="queued", file_sha256=sha,
                file_format="csv", attempts=0, hidden=False, disqualified=False)
            .returning(Submission.id)).scalar_one())


def wait_for(check: Callable[[], bool], seconds: float, what: str,
             output: Callable[[], str] | None = None) -> None:
    """Poll `check` until it holds; past `seconds`, fail with `what` and `output()`."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}"
                                 + (f"\n{output()}" if output else ""))
        time.sleep(0.05)


def missing(binary: str) -> None:
    """A private server's binary is not installed: skip, or fail under CI."""
    message = f"{binary} is not installed"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


class ThrowawayRedis:
    """A redis-server of this test's own, without persistence: killing it loses its queue."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            missing("redis-server")
        self.binary = str(binary)
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import redis

        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url)

        def up() -> bool:
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

        wait_for(up, 20, f"redis-server on port {self.port}")
        client.close()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            # SIGCONT first: a server frozen with SIGSTOP acts on SIGKILL only once resumed.
            self.process.send_signal(signal.SIGCONT)
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
