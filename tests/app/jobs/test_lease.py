"""The lease, the scoring transaction and the reaper, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from app_factories import add_verification, detached
from sqlalchemy import func, select, update

from app.jobs import lease
from app.jobs.context import JobContext
from app.jobs.scoring import rescore, score_submission, upsert_scores
from app.models import Rescore, Score, Submission
from app.storage import load_predictions
from evaluator.scoring import ScoreReport


def claim(ctx: JobContext, sid: int, owner: str) -> bool:
    return lease.claim(ctx, Submission, sid, owner)


def renew(ctx: JobContext, sid: int, owner: str) -> bool:
    return lease.renew(ctx, Submission, sid, owner)


def reap(ctx: JobContext) -> list[int]:
    return lease.reap(ctx, Submission)


def add_rescore(ctx: JobContext, sid: int, version: str = "2") -> int:
    with ctx.factory() as session:
        request = Rescore(submission_id=sid, scorer_version=version, state="queued")
        session.add(request)
        session.commit()
        return request.id


@pytest.fixture
def add_submission(ctx: JobContext, make_team: Any) -> Callable[[bytes], int]:
    team, _ = make_team("alpha")

    def add(body: bytes) -> int:
        sha = ctx.store.put_bytes(body)
        with ctx.factory() as session:
            sub = Submission(team_id=team.id, country="NL", method="m", state="queued",
                             file_sha256=sha, file_format="csv")
            session.add(sub)
            session.commit()
            return sub.id

    return add


def state_of(ctx: JobContext, sid: int) -> Submission:
    return detached(ctx, Submission, sid)


def score_count(ctx: JobContext, sid: int) -> int:
    with ctx.factory() as session:
        return int(session.execute(select(func.count()).select_from(Score)
                                   .where(Score.submission_id == sid)).scalar_one())


def expire_lease(ctx: JobContext, sid: int) -> None:
    with ctx.factory() as session:
        session.execute(update(Submission).where(Submission.id == sid).values(
            lease_expires_at=datetime.now(UTC) - timedelta(seconds=1)))
        session.commit()


def test_only_one_worker_takes_the_lease(ctx: JobContext, add_submission: Any,
                                         make_predictions: Any) -> None:
    sid = add_submission(make_predictions()[0])
    assert claim(ctx, sid, "a")
    assert not claim(ctx, sid, "b")
    sub = state_of(ctx, sid)
    assert (sub.state, sub.lease_owner, sub.attempts) == ("running", "a", 1)


def test_an_expired_lease_can_be_taken_over(ctx: JobContext, add_submission: Any,
                                            make_predictions: Any) -> None:
    sid = add_submission(make_predictions()[0])
    assert claim(ctx, sid, "a")
    expire_lease(ctx, sid)
    assert claim(ctx, sid, "b")
    assert not renew(ctx, sid, "a")
    assert state_of(ctx, sid).attempts == 2


def test_scoring_writes_nine_scores_and_the_predictions(ctx: JobContext,
                                                        add_submission: Any,
                                                        make_predictions: Any,
                                                        settings: Any) -> None:
    body, values = make_predictions(seed=3)
    sid = add_submission(body)
    assert score_submission(ctx, sid) == "scored"
    sub = state_of(ctx, sid)
    assert sub.state == "scored" and sub.lease_owner is None and sub.finished_at is not None
    assert score_count(ctx, sid) == 9
    stored = load_predictions(settings, sub)
    assert stored is not None
    assert stored.ctr == pytest.approx(values["ctr"], abs=1e-7)
    assert stored.ctcvr == pytest.approx(values["ctr"] * values["cvr"], abs=1e-7)


def test_a_second_delivery_of_a_scored_job_writes_nothing_new(ctx: JobContext,
                                                              add_submission: Any,
                                                              make_predictions: Any) -> None:
    sid = add_submission(make_predictions()[0])
    score_submission(ctx, sid)
    assert score_submission(ctx, sid) == "skipped"
    assert score_count(ctx, sid) == 9


def test_worker_that_lost_its_lease_writes_no_scores(ctx: JobContext, add_submission: Any,
                                                     make_predictions: Any) -> None:
    sid = add_submission(make_predictions()[0])
    assert claim(ctx, sid, "ghost")  # a worker that will never finish
    expire_lease(ctx, sid)
    with ctx.factory() as session:  # someone else took it over meanwhile
        session.execute(update(Submission).where(Submission.id == sid).values(
            lease_owner="other", lease_expires_at=datetime.now(UTC) + timedelta(hours=1)))
        session.commit()
    assert score_submission(ctx, sid) == "skipped"
    assert score_count(ctx, sid) == 0


def test_file_that_fails_to_parse_at_scoring_time_fails_with_the_reason(
        ctx: JobContext, add_submission: Any) -> None:
    sid = add_submission(b"row_id,ctr,cvr\n0,0.5,0.5\n")
    assert score_submission(ctx, sid) == "failed"
    sub = state_of(ctx, sid)
    assert sub.state == "failed"
    assert sub.reason and "row" in sub.reason
    assert score_count(ctx, sid) == 0


def test_reaper_requeues_an_expired_lease(ctx: JobContext, add_submission: Any,
                                          make_predictions: Any) -> None:
    sid = add_submission(make_predictions()[0])
    assert claim(ctx, sid, "dead")
    assert reap(ctx) == []  # the lease is still live
    expire_lease(ctx, sid)
    assert reap(ctx) == [sid]
    sub = state_of(ctx, sid)
    assert (sub.state, sub.lease_owner) == ("queued", None)
    assert score_submission(ctx, sid) == "scored"
    assert score_count(ctx, sid) == 9


def test_reaper_fails_a_submission_out_of_attempts(ctx: JobContext, add_submission: Any,
                                                   make_predictions: Any,
                                                   settings: Any) -> None:
    sid = add_submission(make_predictions()[0])
    for attempt in range(settings.max_attempts):
        assert claim(ctx, sid, f"dead{attempt}")
        expire_lease(ctx, sid)
        requeued = reap(ctx)
    assert requeued == []
    sub = state_of(ctx, sid)
    assert sub.state == "failed"
    assert sub.reason == f"worker died {settings.max_attempts} times"
    assert not claim(ctx, sid, "late")


def test_upserting_the_same_report_twice_keeps_one_row_per_key(ctx: JobContext,
                                                               add_submission: Any,
                                                               make_predictions: Any) -> None:
    sid = add_submission(make_predictions()[0])
    score_submission(ctx, sid)
    with ctx.factory() as session:
        scores = session.execute(select(Score).where(Score.submission_id == sid)).scalars()
        splits: dict[str, dict[str, Any]] = {}
        for s in scores:
            splits.setdefault(s.split, {})[s.task] = {
                "auc": s.auc, "ci_low": s.ci_low, "ci_high": s.ci_high, "logloss": s.logloss,
                "n_pos": s.n_pos, "n_neg": s.n_neg, "reason": s.reason}
        report = ScoreReport.from_json({"scorer_version": "1", "splits": splits})
        upsert_scores(session, sid, report)
        session.commit()
    assert score_count(ctx, sid) == 9


def test_rescore_under_a_new_scorer_version_keeps_the_old_scores(
        ctx: JobContext, add_submission: Any, make_predictions: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    sid = add_submission(make_predictions()[0])
    score_submission(ctx, sid)
    import app.jobs.scoring as jobs_scoring
    import evaluator.scoring as scoring

    monkeypatch.setattr(scoring, "SCORER_VERSION", "2")
    original = scoring.score_predictions

    def version_two(data: Any, predictions: Any) -> ScoreReport:
        report = original(data, predictions)
        return ScoreReport(scorer_version="2", scores=report.scores)

    monkeypatch.setattr(jobs_scoring, "score_predictions", version_two)
    request = add_rescore(ctx, sid)
    assert rescore(ctx, request) == "scored"
    assert rescore(ctx, request) == "skipped"
    with ctx.factory() as session:
        versions = sorted(session.execute(select(Score.scorer_version).where(
            Score.submission_id == sid)).scalars())
    assert versions == ["1"] * 9 + ["2"] * 9
    assert state_of(ctx, sid).state == "scored"


def test_reaper_requeues_a_verification_whose_worker_died(ctx: JobContext,
                                                          add_submission: Any,
                                                          make_predictions: Any) -> None:
    from app.models import Verification

    vid = add_verification(ctx, add_submission(make_predictions()[0]))
    assert lease.claim(ctx, Verification, vid, "dead")
    assert not lease.claim(ctx, Verification, vid, "other")
    assert lease.reap(ctx, Verification) == []
    with ctx.factory() as session:
        session.execute(update(Verification).where(Verification.id == vid).values(
            lease_expires_at=datetime.now(UTC) - timedelta(seconds=1)))
        session.commit()
    assert lease.reap(ctx, Verification) == [vid]
    with ctx.factory() as session:
        ver = session.get(Verification, vid)
        assert ver is not None and (ver.state, ver.lease_owner) == ("queued", None)


def test_verification_out_of_attempts_fails_with_the_reason(ctx: JobContext,
                                                            add_submission: Any,
                                                            make_predictions: Any,
                                                            settings: Any) -> None:
    from app.models import Verification

    vid = add_verification(ctx, add_submission(make_predictions()[0]))
    for attempt in range(settings.max_attempts):
        assert lease.claim(ctx, Verification, vid, f"dead{attempt}")
        with ctx.factory() as session:
            session.execute(update(Verification).where(Verification.id == vid).values(
                lease_expires_at=datetime.now(UTC) - timedelta(seconds=1)))
            session.commit()
        lease.reap(ctx, Verification)
    with ctx.factory() as session:
        ver = session.get(Verification, vid)
        assert ver is not None
        assert (ver.state, ver.verified) == ("failed", False)
        assert ver.reason == f"worker died {settings.max_attempts} times"
