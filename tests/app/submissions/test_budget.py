"""What one team may cost (app/submissions/budget.py), as the attacks of issue 14 item 1 tried:
parallel uploads, a store grown without limit, checkpoints that fail at run time for free."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
from torch import nn

from app.config import Settings
from app.db import make_engine, session_factory
from app.models import Submission

BOUNDARY = "budget-test-boundary"


@pytest.fixture
def settings(settings: Settings, make_predictions_size: int) -> Settings:
    # room for two prediction files and their stored predictions, not for three
    return settings.model_copy(update={"team_storage_bytes": int(make_predictions_size * 2.5),
                                       "daily_checkpoint_failures": 2, "daily_quota": 10})


@pytest.fixture
def make_predictions_size(make_predictions: Any) -> int:
    return len(make_predictions(seed=0)[0])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def upload(client: Any, token: str, body: bytes, name: str = "file",
           fields: dict[str, str] | None = None) -> Any:
    return client.post("/api/v1/submissions", headers=bearer(token),
                       files={name: ("x.bin", body, "application/octet-stream")},
                       data={"country": "NL", "method": "m", **(fields or {})})


def multipart(body: bytes) -> tuple[bytes, bytes]:
    """(head, tail) of a multipart upload of `body` as the prediction file."""
    head = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"country\"\r\n\r\nNL\r\n"
            f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"method\"\r\n\r\nm\r\n"
            f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"p.csv\"\r\nContent-Type: text/csv\r\n\r\n").encode()
    return head + body[:100], body[100:] + f"\r\n--{BOUNDARY}--\r\n".encode()


# ---------------------------------------------------------------------- one upload in flight


@pytest.fixture
def slow_upload(live_server: tuple[str, int]) -> Iterator[Callable[..., Any]]:
    """slow_upload(token, body) -> (release, result): an upload that streams its first bytes
    and then waits until `release` is set; result["response"] once it has finished."""
    host, port = live_server
    threads: list[threading.Thread] = []

    def start(token: str, body: bytes) -> tuple[threading.Event, dict[str, Any]]:
        release, started, result = threading.Event(), threading.Event(), {}
        head, tail = multipart(body)

        def chunks() -> Iterator[bytes]:
            yield head
            started.set()
            release.wait(60)
            yield tail

        def run() -> None:
            with httpx.Client(base_url=f"http://{host}:{port}", timeout=60) as client:
                result["response"] = client.post(
                    "/api/v1/submissions", content=chunks(),
                    headers={**bearer(token),
                             "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})

        thread = threading.Thread(target=run)
        thread.start()
        threads.append(thread)
        assert started.wait(30)
        return release, result

    yield start
    for thread in threads:
        thread.join(timeout=60)


def token_team(settings: Settings, token: str) -> int:
    from app.auth import team_for_token

    engine = make_engine(settings)
    try:
        with session_factory(engine)() as session:
            team = team_for_token(session, token)
            assert team is not None
            return team.id
    finally:
        engine.dispose()


def wait_until_held(settings: Settings, team_id: int) -> None:
    """Until the server holds the team's upload slot (its request reached the route)."""
    path = settings.data_dir / "locks" / f"upload-team-{team_id}.lock"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if path.exists():
            fd = os.open(path, os.O_RDWR)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return
            finally:
                os.close(fd)
        time.sleep(0.05)
    raise AssertionError("the first upload never took its team's slot")


def test_a_second_upload_while_one_streams_is_refused_and_the_slot_is_freed(
        live_server: tuple[str, int], slow_upload: Callable[..., Any], make_team: Any,
        make_predictions: Any, settings: Settings) -> None:
    _, token = make_team("parallel")
    _, other_token = make_team("other")
    body = make_predictions(seed=1)[0]
    release, first = slow_upload(token, body)
    wait_until_held(settings, token_team(settings, token))
    host, port = live_server
    with httpx.Client(base_url=f"http://{host}:{port}", timeout=60) as client:
        # The first upload's body is streaming: its team's slot is taken...
        second = upload(client, token, body)
        assert second.status_code == 429, second.text
        assert second.json()["error"] == "upload_in_flight"
        assert "one upload in flight per team" in second.json()["detail"]
        # ...and only its team's.
        assert upload(client, other_token, body).status_code == 202
        release.set()
        finished = time.monotonic() + 60
        while "response" not in first and time.monotonic() < finished:
            time.sleep(0.1)
        assert first["response"].status_code == 202, first["response"].text
        # Freed once the first one ended.
        assert upload(client, token, make_predictions(seed=2)[0]).status_code == 202


def test_the_slot_holds_across_processes(client: Any, make_team: Any, settings: Settings,
                                         make_predictions: Any) -> None:
    team, token = make_team("cross-process")
    lock = settings.data_dir / "locks" / f"upload-team-{team.id}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600); "
         "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); sys.stdin.read()",
         str(lock)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        refused = upload(client, token, make_predictions(seed=1)[0])
        assert refused.status_code == 429
        assert refused.json()["error"] == "upload_in_flight"
    finally:
        holder.communicate("", timeout=30)
    assert upload(client, token, make_predictions(seed=1)[0]).status_code == 202


def test_an_aborted_upload_frees_the_slot(client: Any, make_team: Any,
                                          make_predictions: Any) -> None:
    _, token = make_team("aborts")
    bad = client.post("/api/v1/submissions", content=b"garbage",
                      headers={**bearer(token),
                               "Content-Type": "multipart/form-data; boundary=x"})
    assert bad.status_code == 400
    assert upload(client, token, make_predictions(seed=3)[0]).status_code == 202


# ---------------------------------------------------------------------- storage budget


def test_uploads_past_the_team_storage_budget_are_refused_naming_it(
        client: Any, make_team: Any, make_predictions: Any, settings: Settings) -> None:
    _, token = make_team("hoarder")
    _, neighbour = make_team("neighbour")
    statuses = [upload(client, token, make_predictions(seed=seed)[0]) for seed in range(4)]
    codes = [r.status_code for r in statuses]
    assert codes[:2] == [202, 202] and 413 in codes, codes
    refused = statuses[codes.index(413)]
    body = refused.json()
    assert body["error"] == "storage_budget_exceeded"
    assert "LB_TEAM_STORAGE_BYTES" in body["detail"]["message"]
    detail = body["detail"]
    assert detail["budget"] == settings.team_storage_bytes
    # (stored predictions are written after an upload was accepted, so `used` alone may be
    # past the budget by them)
    assert detail["budget"] < detail["used"] + detail["upload"]
    # Another team's budget is its own.
    assert upload(client, neighbour, make_predictions(seed=2)[0]).status_code == 202
    # Nothing of the refused upload stayed in the temp folder.
    assert not any((settings.artifacts / "tmp").iterdir())


# ---------------------------------------------------------------------- failure budget


def tiny_checkpoint(tmp_path: Path) -> bytes:
    class Model(nn.Module):
        def forward(self, categorical: torch.Tensor, numerical: torch.Tensor
                    ) -> torch.Tensor:
            return torch.sigmoid(numerical[:, :2])

    path = tmp_path / "model.pt"
    torch.jit.save(torch.jit.script(Model()), str(path))
    return path.read_bytes()


def add_failed(settings: Settings, team_id: int, reason: str, *, with_file: bool = False
               ) -> None:
    engine = make_engine(settings)
    try:
        with session_factory(engine)() as session:
            session.add(Submission(team_id=team_id, country="NL", method="loop", state="failed",
                                   checkpoint_sha256="c" * 64, reason=reason,
                                   file_sha256="f" * 64 if with_file else None,
                                   finished_at=datetime.now(UTC), attempts=1))
            session.commit()
    finally:
        engine.dispose()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_checkpoint_uploads_stop_once_the_daily_failure_budget_is_spent(
        client: Any, make_team: Any, make_predictions: Any, settings: Settings,
        tmp_path: Path) -> None:
    team, token = make_team("failing")
    # Not the team's doing, or not a checkpoint run: these do not count.
    add_failed(settings, team.id, "internal error after 3 attempts: OperationalError")
    add_failed(settings, team.id, "file: bad row", with_file=True)
    for _ in range(settings.daily_checkpoint_failures):
        add_failed(settings, team.id, "time limit: the run took longer than 60 s")
    refused = upload(client, token, tiny_checkpoint(tmp_path), name="checkpoint")
    assert refused.status_code == 429, refused.text
    body = refused.json()
    assert body["error"] == "checkpoint_failure_budget"
    assert "LB_DAILY_CHECKPOINT_FAILURES" in body["detail"]["message"]
    assert body["detail"]["used"] == settings.daily_checkpoint_failures
    assert int(refused.headers["Retry-After"]) > 0
    # Prediction files are still accepted.
    assert upload(client, token, make_predictions(seed=5)[0]).status_code == 202
