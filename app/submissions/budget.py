"""What one team may cost the service besides its daily quota (issue 14, item 1).

- **One upload in flight per team.** Three parallel 960 MiB uploads once put 2.7 GB in the temp
  folder. A second upload while one streams is refused with 429. The slot is an exclusive
  `flock` on `DATA_DIR/locks/upload-team-<id>.lock`: it holds across the API's processes on one
  host, and the kernel releases it on every exit path (a response, an exception, a killed
  process). The body is not read before the slot is taken. A retry with the in-flight upload's
  Idempotency-Key waits for it (body unread) and gets its submission back.
- **A storage budget** (LB_TEAM_STORAGE_BYTES): the bytes of the team's stored artifacts (its
  prediction files, checkpoints and stored predictions, each counted once, as they are on disk)
  plus the upload's may not exceed it; 413 naming it. Checked from Content-Length before the
  body is read, and from the received sizes after.
- **A daily budget of run-time checkpoint failures** (LB_DAILY_CHECKPOINT_FAILURES): a failing
  checkpoint costs no quota (the quota counts what did not fail), so one that fails at run time
  cost nothing at all. Once a team's checkpoints have failed at run time that many times in a
  UTC day, checkpoint uploads get 429 naming the budget until midnight UTC.

Organisers and baseline teams are exempt, as from the quota.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app.config import Settings
from app.deps import CurrentTeam, SessionDep, SettingsDep
from app.errors import AppError, QuotaExceeded
from app.models import Submission, Team
from app.storage import ArtifactStore
from app.submissions.upload import Upload

# Failures the service caused (its own errors, a lost database) are not the team's.
INTERNAL_REASON = "internal error"


class UploadInFlight(AppError):
    status, code = 429, "upload_in_flight"


class StorageBudgetExceeded(AppError):
    status, code = 413, "storage_budget_exceeded"


def exempt(team: Team) -> bool:
    return team.is_organiser or team.is_baseline


def _start_of_day(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


# ------------------------------------------------------------------------ one upload in flight


def _lock_path(settings: Settings, team_id: int) -> str:
    folder = settings.data_dir / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder / f"upload-team-{team_id}.lock")


# A retry of an upload still in flight (same Idempotency-Key) waits for it instead of being
# refused: it is answered with the first one's submission. It waits without reading its body.
SAME_KEY_WAIT_S = 600.0
_POLL_S = 0.05


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


async def _holder_key(fd: int) -> str:
    """The Idempotency-Key of the upload holding the slot ("" for none). A holder writes it just
    after taking the lock: an empty file is read again for a moment."""
    for _ in range(10):
        text = os.pread(fd, 256, 0).decode("ascii", "replace")
        if text:
            return text.strip()
        await asyncio.sleep(0.01)
    return ""


@asynccontextmanager
async def hold_upload_slot(request: Request, team: Team, session: Session,
                           settings: Settings) -> AsyncIterator[None]:
    """The team's upload slot, held for the `async with` block (the API's and the browser's
    uploads both take it)."""
    if exempt(team):
        yield
        return
    key = request.headers.get("idempotency-key") or ""
    fd = os.open(_lock_path(settings, team.id), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + SAME_KEY_WAIT_S
        while not _try_lock(fd):
            if not key or await _holder_key(fd) != key or time.monotonic() > deadline:
                raise UploadInFlight(
                    f"team {team.name!r} already has an upload in progress: at most one "
                    "upload in flight per team; wait for it to finish, then try again",
                    headers={"Retry-After": "5"})
            await asyncio.sleep(_POLL_S)
        os.ftruncate(fd, 0)
        os.pwrite(fd, (key or "-").encode("ascii", "replace") + b"\n", 0)
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit():
            await run_in_threadpool(_check_storage_and_commit, session, settings, team,
                                    int(declared))
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _check_storage_and_commit(session: Session, settings: Settings, team: Team,
                              incoming: int) -> None:
    try:
        check_storage(session, settings, team, incoming)
    finally:
        session.commit()


async def upload_slot(request: Request, team: CurrentTeam, session: SessionDep,
                      settings: SettingsDep) -> AsyncIterator[None]:
    """A dependency holding the team's upload slot for the whole request."""
    async with hold_upload_slot(request, team, session, settings):
        yield


UploadSlot = Annotated[None, Depends(upload_slot, scope="function")]


# ------------------------------------------------------------------------ storage budget


def team_artifacts(session: Session, team_id: int) -> set[str]:
    rows = session.execute(select(Submission.file_sha256, Submission.checkpoint_sha256,
                                  Submission.predictions_sha256)
                           .where(Submission.team_id == team_id)).all()
    return {sha for row in rows for sha in row if sha}


def stored_bytes(session: Session, settings: Settings, team_id: int) -> int:
    """The bytes the team's artifacts take in the store now (deleted ones count nothing)."""
    store = ArtifactStore.of(settings)
    total = 0
    for sha in team_artifacts(session, team_id):
        try:
            total += store.path(sha).stat().st_size
        except (FileNotFoundError, ValueError):
            continue
    return total


def check_storage(session: Session, settings: Settings, team: Team, incoming: int) -> None:
    if exempt(team):
        return
    budget = settings.team_storage_bytes
    used = stored_bytes(session, settings, team.id)
    if used + incoming > budget:
        raise StorageBudgetExceeded({
            "message": f"the storage budget of {budget} bytes per team (LB_TEAM_STORAGE_BYTES) "
                       f"would be exceeded: the team's artifacts take {used} bytes and this "
                       f"upload adds {incoming}; artifacts of failed submissions are deleted "
                       "after the retention period, or ask the organisers",
            "budget": budget, "used": used, "upload": incoming})


# ------------------------------------------------------------------------ failure budget


def checkpoint_failures_since(session: Session, team_id: int, since: datetime) -> int:
    """Checkpoint runs of the team that failed at run time since `since` (a submission whose
    score came from running its checkpoint: one without a prediction file)."""
    return int(session.execute(
        select(func.count()).select_from(Submission).where(
            Submission.team_id == team_id, Submission.state == "failed",
            Submission.checkpoint_sha256.is_not(None), Submission.file_sha256.is_(None),
            Submission.finished_at >= since,
            or_(Submission.reason.is_(None),
                ~Submission.reason.startswith(INTERNAL_REASON)))
    ).scalar_one())


def check_failures(session: Session, settings: Settings, team: Team) -> None:
    if exempt(team):
        return
    now = datetime.now(UTC)
    day = _start_of_day(now)
    limit = settings.daily_checkpoint_failures
    failed = checkpoint_failures_since(session, team.id, day)
    if failed >= limit:
        resets = day + timedelta(days=1)
        raise QuotaExceeded(
            {"message": f"the daily budget of {limit} checkpoint failures per team "
                        f"(LB_DAILY_CHECKPOINT_FAILURES) is used up: {failed} of the team's "
                        "checkpoints failed at run time today; checkpoint uploads are refused "
                        "until it resets (prediction files are still accepted)",
             "limit": limit, "used": failed, "resets_at": resets.isoformat()},
            code="checkpoint_failure_budget",
            headers={"Retry-After": str(max(1, int((resets - now).total_seconds()) + 1))})


def check_upload(session: Session, settings: Settings, team: Team, upload: Upload) -> None:
    """The budgets, once the upload's parts are in: its real sizes, and whether it carries a
    checkpoint. Ends the read transaction so no connection is held meanwhile."""
    try:
        check_storage(session, settings, team, sum(f.size for f in upload.files.values()))
        if "checkpoint" in upload.files:
            check_failures(session, settings, team)
    finally:
        session.commit()
