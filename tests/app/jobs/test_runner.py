"""The one runner (app/jobs/runner.py) for every kind of job: the outcomes that the
verification tests of test_jobs.py leave out (score and rescore jobs, a failed re-enqueue, a
database error while recording a participant's failure, a lease taken over mid-job)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from app_factories import add_verification
from sqlalchemy import func, select, update
from sqlalchemy.exc import OperationalError

from app.jobs import lease
from app.jobs import scoring as scoring_jobs
from app.jobs.context import JobContext, JobKind
from app.jobs.scoring import rescore, score_submission
from app.jobs.verification import verify
from app.models import Rescore, Score, Submission, Verification
from evaluator.checkpoint import CheckpointRun


@pytest.fixture
def add_submission(ctx: JobContext, make_team: Any, make_predictions: Any
                   ) -> Callable[[], int]:
    """add_submission() -> the id of a queued NL submission with a valid file (and a
    checkpoint, never run: verifications here are given their runner)."""
    team, _ = make_team("alpha")

    def add() -> int:
        with ctx.factory() as session:
            sub = Submission(team_id=team.id, country="NL", method="m", state="queued",
                             file_sha256=ctx.store.put_bytes(make_predictions(seed=4)[0]),
                             checkpoint_sha256=ctx.store.put_bytes(b"never run"),
                             file_format="csv", outputs="ctr,cvr")
            session.add(sub)
            session.commit()
            return sub.id

    return add


def row(ctx: JobContext, model: lease.LeasedModel, row_id: int) -> Any:
    with ctx.factory() as session:
        found = session.get(model, row_id)
        assert found is not None
        session.expunge(found)
        return found


def scores_by_version(ctx: JobContext, sid: int) -> dict[str, int]:
    with ctx.factory() as session:
        rows = session.execute(select(Score.scorer_version, func.count()).where(
            Score.submission_id == sid).group_by(Score.scorer_version)).all()
    return {version: count for version, count in rows}


def broken(*_args: Any, **_limits: Any) -> Any:
    raise RuntimeError("a bug of ours")


def take_over(ctx: JobContext, model: lease.LeasedModel, row_id: int) -> None:
    """Another worker owns the row now (as after an expired lease was taken over)."""
    with ctx.factory() as session:
        session.execute(update(model).where(model.id == row_id).values(
            lease_owner="other-worker", lease_expires_at=datetime.now(UTC) + timedelta(hours=1)))
        session.commit()


def test_an_unexpected_error_in_a_score_job_puts_it_back_and_enqueues_it_as_a_score(
        ctx: JobContext, add_submission: Callable[[], int], enqueued: list[tuple[JobKind, int]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    sid = add_submission()
    monkeypatch.setattr(scoring_jobs, "score_afresh", broken)
    assert score_submission(ctx, sid) == "retry"
    sub = row(ctx, Submission, sid)
    assert (sub.state, sub.lease_owner, sub.attempts, sub.reason) == ("queued", None, 1, None)
    assert enqueued == [("score", sid)]
    assert scores_by_version(ctx, sid) == {}
    monkeypatch.undo()
    assert score_submission(ctx, sid) == "scored"
    assert (row(ctx, Submission, sid).attempts, scores_by_version(ctx, sid)) == (2, {"1": 9})


def test_a_put_back_job_whose_enqueue_fails_stays_queued_for_the_reaper(
        ctx: JobContext, add_submission: Callable[[], int], settings: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from app.jobs.reaper import reap_and_requeue

    def down(_kind: JobKind, _row_id: int) -> None:
        raise ConnectionError("Redis is down")

    sid = add_submission()
    monkeypatch.setattr(scoring_jobs, "score_afresh", broken)
    monkeypatch.setattr(ctx, "enqueue", down)
    before = datetime.now(UTC)
    assert score_submission(ctx, sid) == "retry"  # not raised: the row is the record
    sub = row(ctx, Submission, sid)
    assert (sub.state, sub.lease_owner) == ("queued", None)
    due = sub.lease_expires_at.replace(tzinfo=UTC)
    assert before + timedelta(seconds=settings.requeue_seconds - 5) < due
    assert due <= datetime.now(UTC) + timedelta(seconds=settings.requeue_seconds)
    # Once that time has passed the reaper hands it to the queue, which is back by then.
    with ctx.factory() as session:
        session.execute(update(Submission).where(Submission.id == sid).values(
            lease_expires_at=datetime.now(UTC) - timedelta(seconds=1)))
        session.commit()
    monkeypatch.undo()
    handed: list[tuple[JobKind, int]] = []
    monkeypatch.setattr(ctx, "enqueue", lambda kind, row_id: handed.append((kind, row_id)))
    assert reap_and_requeue(ctx) == 1
    assert handed == [("score", sid)]
    assert score_submission(ctx, sid) == "scored"


def test_a_database_error_while_recording_a_participant_failure_puts_the_job_back(
        ctx: JobContext, add_submission: Callable[[], int], enqueued: list[tuple[JobKind, int]],
        make_team: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    team, _ = make_team("beta")
    with ctx.factory() as session:
        bad = Submission(team_id=team.id, country="NL", method="m", state="queued",
                         file_sha256=ctx.store.put_bytes(b"row_id,ctr,cvr\n0,0.5,0.5\n"),
                         file_format="csv")
        session.add(bad)
        session.commit()
        sid = bad.id
    release = lease.release

    def cut_off(*_args: Any, **_kwargs: Any) -> bool:
        raise OperationalError("UPDATE submission", {}, Exception("server closed"))

    monkeypatch.setattr(lease, "release", cut_off)
    assert score_submission(ctx, sid) == "retry"
    sub = row(ctx, Submission, sid)
    # Not lost in `running` until its lease ends, and not failed by our own error.
    assert (sub.state, sub.lease_owner, sub.attempts, sub.reason) == ("queued", None, 1, None)
    assert enqueued == [("score", sid)]
    monkeypatch.setattr(lease, "release", release)
    assert score_submission(ctx, sid) == "failed"
    sub = row(ctx, Submission, sid)
    assert sub.state == "failed" and sub.reason and "row" in sub.reason
    assert sub.attempts == 2


def test_an_unexpected_error_after_the_lease_was_taken_over_touches_nothing(
        ctx: JobContext, add_submission: Callable[[], int], enqueued: list[tuple[JobKind, int]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    sid = add_submission()

    def stalled_then_broken(*_args: Any) -> Any:
        take_over(ctx, Submission, sid)
        raise RuntimeError("a bug of ours")

    monkeypatch.setattr(scoring_jobs, "score_afresh", stalled_then_broken)
    assert score_submission(ctx, sid) == "lease_lost"
    sub = row(ctx, Submission, sid)
    assert (sub.state, sub.lease_owner, sub.attempts) == ("running", "other-worker", 1)
    assert enqueued == []  # the new owner runs it; no second copy in the queue


def test_a_result_finished_after_the_lease_was_taken_over_is_not_written(
        ctx: JobContext, add_submission: Callable[[], int], enqueued: list[tuple[JobKind, int]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    sid = add_submission()
    real = scoring_jobs.score_afresh

    def slow(context: JobContext, submission_id: int) -> Any:
        result = real(context, submission_id)
        take_over(ctx, Submission, sid)
        return result

    monkeypatch.setattr(scoring_jobs, "score_afresh", slow)
    assert score_submission(ctx, sid) == "lease_lost"
    sub = row(ctx, Submission, sid)
    assert (sub.state, sub.lease_owner, sub.predictions_sha256) == (
        "running", "other-worker", None)
    assert scores_by_version(ctx, sid) == {}
    assert enqueued == []


def test_an_unexpected_error_in_a_rescore_puts_it_back_and_keeps_the_old_scores(
        ctx: JobContext, add_submission: Callable[[], int], enqueued: list[tuple[JobKind, int]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    import evaluator.scoring as scoring

    sid = add_submission()
    assert score_submission(ctx, sid) == "scored"
    monkeypatch.setattr(scoring, "SCORER_VERSION", "2")
    with ctx.factory() as session:
        request = Rescore(submission_id=sid, scorer_version="2", state="queued")
        session.add(request)
        session.commit()
        rid = request.id
    real = scoring_jobs.score_afresh
    monkeypatch.setattr(scoring_jobs, "score_afresh", broken)
    assert rescore(ctx, rid) == "retry"
    assert (row(ctx, Rescore, rid).state, enqueued) == ("queued", [("rescore", rid)])
    assert scores_by_version(ctx, sid) == {"1": 9}
    monkeypatch.setattr(scoring_jobs, "score_afresh", real)
    assert rescore(ctx, rid) == "scored"
    assert scores_by_version(ctx, sid) == {"1": 9, "2": 9}
    assert row(ctx, Submission, sid).state == "scored"


def test_a_checkpoint_whose_outputs_do_not_fit_the_test_set_fails_its_verification_at_once(
        ctx: JobContext, add_submission: Callable[[], int],
        enqueued: list[tuple[JobKind, int]]) -> None:
    sid = add_submission()
    assert score_submission(ctx, sid) == "scored"

    def too_short(*_args: Any, **_limits: Any) -> CheckpointRun:
        return CheckpointRun(ctr=np.full(5, 0.5), cvr=np.full(5, 0.5), ctcvr=np.full(5, 0.25),
                             torch_version="test", device="cpu", duration_s=0.1)

    vid = add_verification(ctx, sid)
    assert verify(ctx, vid, too_short) == "failed"
    ver = row(ctx, Verification, vid)
    assert (ver.state, ver.verified, ver.attempts, ver.lease_owner) == ("failed", False, 1, None)
    assert ver.reason and "5" in ver.reason and "rows" in ver.reason
    assert enqueued == []
