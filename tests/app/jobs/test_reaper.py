"""The reaper's pass (app/jobs/reaper.py) over every kind of job row: each lost job is enqueued
under its own kind, a pass whose enqueue failed loses nothing, and a rescore whose worker died is
put back, finished, or failed once its attempts are spent. (A rescore whose enqueue was lost,
planned through the organiser service: test_jobs.py.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from app_factories import add_verification
from sqlalchemy import func, select, update

from app.jobs import lease
from app.jobs.context import JobContext, JobKind
from app.jobs.reaper import MODELS, reap_and_requeue
from app.jobs.scoring import rescore, score_submission
from app.models import Rescore, Score, Submission, Verification


def backdate(ctx: JobContext, model: lease.LeasedModel, row_id: int, column: str,
             seconds: float) -> None:
    with ctx.factory() as session:
        session.execute(update(model).where(model.id == row_id).values(
            {column: datetime.now(UTC) - timedelta(seconds=seconds)}))
        session.commit()


@pytest.fixture
def scored(ctx: JobContext, make_team: Any, make_predictions: Any) -> int:
    """A scored NL submission (scorer version 1) with a checkpoint (never run here)."""
    team, _ = make_team("alpha")
    with ctx.factory() as session:
        sub = Submission(team_id=team.id, country="NL", method="m", state="queued",
                         file_sha256=ctx.store.put_bytes(make_predictions(seed=6)[0]),
                         checkpoint_sha256=ctx.store.put_bytes(b"never run"),
                         file_format="csv", outputs="ctr,cvr")
        session.add(sub)
        session.commit()
        sid = sub.id
    assert score_submission(ctx, sid) == "scored"
    return sid


def lost_jobs(ctx: JobContext, scored: int, make_team: Any, make_predictions: Any,
              settings: Any) -> set[tuple[JobKind, int]]:
    """One queued job of each kind whose enqueue was lost (older than requeue_seconds)."""
    team, _ = make_team("beta")
    with ctx.factory() as session:
        sub = Submission(team_id=team.id, country="NL", method="m", state="queued",
                         file_sha256=ctx.store.put_bytes(make_predictions(seed=7)[0]),
                         file_format="csv")
        request = Rescore(submission_id=scored, scorer_version="2", state="queued")
        session.add_all([sub, request])
        session.commit()
        sid, rid = sub.id, request.id
    vid = add_verification(ctx, scored)
    old = settings.requeue_seconds + 1
    backdate(ctx, Submission, sid, "created_at", old)
    backdate(ctx, Verification, vid, "created_at", old)
    backdate(ctx, Rescore, rid, "created_at", old)
    return {("score", sid), ("verify", vid), ("rescore", rid)}


def test_each_lost_job_is_enqueued_once_under_its_own_kind(
        ctx: JobContext, scored: int, make_team: Any, make_predictions: Any, settings: Any,
        enqueued: list[tuple[JobKind, int]]) -> None:
    lost = lost_jobs(ctx, scored, make_team, make_predictions, settings)
    assert reap_and_requeue(ctx) == 3
    assert sorted(enqueued) == sorted(lost)
    assert reap_and_requeue(ctx) == 0  # once per requeue period, not on every pass


def test_a_pass_whose_enqueue_failed_loses_no_job(
        ctx: JobContext, scored: int, make_team: Any, make_predictions: Any, settings: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    lost = lost_jobs(ctx, scored, make_team, make_predictions, settings)

    def down(_kind: JobKind, _row_id: int) -> None:
        raise ConnectionError("Redis is down")

    monkeypatch.setattr(ctx, "enqueue", down)
    with pytest.raises(ConnectionError):
        reap_and_requeue(ctx)
    # A requeue period later the queue is back: every lost job is handed to it.
    handed: list[tuple[JobKind, int]] = []
    monkeypatch.setattr(ctx, "enqueue", lambda kind, row_id: handed.append((kind, row_id)))
    for kind, row_id in lost:
        backdate(ctx, MODELS[kind], row_id, "lease_expires_at", 1)
    reap_and_requeue(ctx)
    assert sorted(handed) == sorted(lost)


def rescore_request(ctx: JobContext, sid: int) -> int:
    with ctx.factory() as session:
        request = Rescore(submission_id=sid, scorer_version="2", state="queued")
        session.add(request)
        session.commit()
        return request.id


def test_a_rescore_whose_worker_died_is_put_back_and_then_scored_once(
        ctx: JobContext, scored: int, enqueued: list[tuple[JobKind, int]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    import evaluator.scoring as scoring

    monkeypatch.setattr(scoring, "SCORER_VERSION", "2")
    rid = rescore_request(ctx, scored)
    assert lease.claim(ctx, Rescore, rid, "dead-worker")
    assert reap_and_requeue(ctx) == 0  # its lease is still live
    backdate(ctx, Rescore, rid, "lease_expires_at", 1)
    assert reap_and_requeue(ctx) == 1
    assert enqueued == [("rescore", rid)]
    assert rescore(ctx, rid) == "scored"
    assert rescore(ctx, rid) == "skipped"  # the queue's second copy, if any, runs nothing
    with ctx.factory() as session:
        request = session.get(Rescore, rid)
        assert request is not None
        assert (request.state, request.attempts, request.lease_owner) == ("done", 2, None)
        counts = dict(session.execute(select(Score.scorer_version, func.count()).where(
            Score.submission_id == scored).group_by(Score.scorer_version)).all())
    assert counts == {"1": 9, "2": 9}


def test_a_rescore_whose_worker_died_every_time_fails_with_the_reason(
        ctx: JobContext, scored: int, settings: Any,
        enqueued: list[tuple[JobKind, int]]) -> None:
    rid = rescore_request(ctx, scored)
    for attempt in range(settings.max_attempts):
        assert lease.claim(ctx, Rescore, rid, f"dead-{attempt}")
        backdate(ctx, Rescore, rid, "lease_expires_at", 1)
        reap_and_requeue(ctx)
    assert enqueued == [("rescore", rid)] * (settings.max_attempts - 1)
    with ctx.factory() as session:
        request = session.get(Rescore, rid)
        assert request is not None
        assert (request.state, request.lease_owner) == ("failed", None)
        assert request.reason == f"worker died {settings.max_attempts} times"
    assert rescore(ctx, rid) == "skipped"
