"""The retention sweep (app/jobs/retention.py): artifacts of failed submissions are deleted after
the retention period by the worker's periodic task; the row, its reason and every artifact still
needed by another submission stay, and each deletion is in the audit log."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from app.config import Settings
from app.jobs.context import JobContext
from app.jobs.lease import utcnow
from app.jobs.queue import Queue
from app.jobs.retention import sweep
from app.models import AuditLog, Submission


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"failed_artifact_retention_seconds": 3600,
                                       "retention_sweep_seconds": 1})


def add(ctx: JobContext, team_id: int, state: str, hours_ago: float, **shas: str) -> int:
    with ctx.factory() as session:
        sub = Submission(team_id=team_id, country="NL", method="m", state=state,
                         reason="time limit: the run took longer than 60 s"
                         if state == "failed" else None,
                         finished_at=utcnow() - timedelta(hours=hours_ago), **shas)
        session.add(sub)
        session.commit()
        return sub.id


def test_failed_artifacts_go_after_the_retention_period_and_nothing_else(
        ctx: JobContext, make_team: Any) -> None:
    team, _ = make_team("hog")
    big = ctx.store.put_bytes(b"a 100 MB checkpoint, in spirit" * 1000)
    shared = ctx.store.put_bytes(b"row_id,ctr,cvr\n0,0.1,0.2\n")
    recent = ctx.store.put_bytes(b"failed an hour ago... well, ten minutes")
    old = add(ctx, team.id, "failed", 48, checkpoint_sha256=big, file_sha256=shared)
    add(ctx, team.id, "scored", 50, file_sha256=shared)
    young = add(ctx, team.id, "failed", 0.1, checkpoint_sha256=recent)

    first = sweep(ctx, settle_seconds=0)
    assert first.trashed == 1 and first.deleted == 0
    second = sweep(ctx, settle_seconds=0)
    assert second.deleted == 1
    assert not ctx.store.path(big).exists()
    assert not any((ctx.store.root / "trash").iterdir())
    assert ctx.store.path(shared).exists()  # a scored submission still refers to it
    assert ctx.store.path(recent).exists()  # inside the retention period
    with ctx.factory() as session:
        row = session.get(Submission, old)
        assert row is not None
        assert row.state == "failed" and row.reason is not None and "time limit" in row.reason
        assert row.checkpoint_sha256 == big  # the record of what was submitted stays
        logged = session.execute(select(AuditLog).where(
            AuditLog.action == "artifacts_deleted")).scalars().all()
    assert [(e.target_type, e.target_id) for e in logged] == [("submission", old)]
    assert logged[0].detail is not None and logged[0].detail["artifacts"] == [big]
    assert young not in [e.target_id for e in logged]


def test_a_trashed_artifact_uploaded_again_is_put_back(ctx: JobContext,
                                                       make_team: Any) -> None:
    team, _ = make_team("again")
    body = b"the same bytes, uploaded again"
    sha = ctx.store.put_bytes(body)
    add(ctx, team.id, "failed", 48, checkpoint_sha256=sha)
    assert sweep(ctx, settle_seconds=0).trashed == 1
    # An upload adopting the same content before the next pass.
    add(ctx, team.id, "queued", 0, checkpoint_sha256=sha)
    result = sweep(ctx, settle_seconds=0)
    assert result.deleted == 0 and result.restored == 1
    assert ctx.store.path(sha).read_bytes() == body


def test_the_worker_runs_the_sweep_as_a_periodic_task(settings: Settings, ctx: JobContext,
                                                      make_team: Any) -> None:
    team, _ = make_team("periodic")
    sha = ctx.store.put_bytes(b"to be swept by the worker")
    add(ctx, team.id, "failed", 48, checkpoint_sha256=sha)
    queue = Queue(settings)
    try:
        # What the consumer's scheduler does on each tick: read the due periodic tasks, run.
        due = {type(t).__name__: t for t in queue.huey.read_periodic(utcnow())}
        assert "sweep_failed_artifacts" in due
        queue.huey.execute(due["sweep_failed_artifacts"])  # trashes it
        time.sleep(1.1)  # the sweep's own period (1 s here), not a wait for a result
        for task in queue.huey.read_periodic(utcnow()):
            if type(task).__name__ == "sweep_failed_artifacts":
                queue.huey.execute(task)  # deletes it
    finally:
        queue.close()
    assert not ctx.store.path(sha).exists()
