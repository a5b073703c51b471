"""The one runner (app/jobs/runner.py) and the reaper (app/jobs/reaper.py) for every kind of
job: verification's outcomes, and a rescore whose enqueue was lost."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from app_factories import add_verification, scored_with_checkpoint, verification_row
from sqlalchemy import func, select, update

from app.jobs.context import JobContext, JobKind
from app.jobs.reaper import reap_and_requeue
from app.jobs.scoring import rescore
from app.jobs.verification import verify
from app.models import Rescore, Score
from app.organiser import service as organiser
from evaluator.checkpoint import CheckpointFailed, CheckpointRun
from evaluator.data.prepared import PreparedData


@pytest.fixture
def scored(ctx: JobContext, make_team: Any, make_predictions: Any) -> tuple[int, dict[str, Any]]:
    """A scored submission with a file and a (never run) checkpoint, and the file's values."""
    team, _ = make_team("alpha")
    body, values = make_predictions(seed=4)
    return scored_with_checkpoint(ctx, team.id, body), values


def keyed(values: dict[str, Any], settings: Any) -> Callable[..., CheckpointRun]:
    """A stand-in checkpoint whose predictions are a function of each row's features (a table
    keyed by them), so that they follow the rows wherever they are."""
    base = PreparedData.open(settings.prepared_root / "NL")

    def key(data: PreparedData, i: int) -> bytes:
        return bytes(data.categorical[i].tobytes() + data.numerical[i].tobytes())

    index = {key(base, i): i for i in range(base.n_rows)}

    def run(_archive: Any, prepared: Any, outputs: str, **_limits: Any) -> CheckpointRun:
        data = PreparedData.open(prepared)
        rows = np.array([index[key(data, i)] for i in range(data.n_rows)])
        ctr, cvr = values["ctr"][rows], values["cvr"][rows]
        return CheckpointRun(ctr=ctr, cvr=cvr, ctcvr=ctr * cvr, torch_version="test",
                             device="cpu", duration_s=0.1, outputs="ctr,cvr")
    return run


def test_a_verification_that_reproduces_the_file_compares_every_row(
        ctx: JobContext, scored: tuple[int, dict[str, Any]], settings: Any) -> None:
    sid, values = scored
    vid = add_verification(ctx, sid)
    assert verify(ctx, vid, keyed(values, settings)) == "done"
    ver = verification_row(ctx, vid)
    assert (ver.state, ver.verified, ver.lease_owner) == ("done", True, None)
    assert ver.results is not None
    assert set(ver.results["rows"]) == set(ver.results["permuted"]) == {"ctr", "cvr"}
    for comparison in ("rows", "permuted"):
        for task in ver.results[comparison].values():
            assert (task["max_abs_diff"], task["rows_over"]) == (0.0, 0)


def test_a_checkpoint_that_differs_on_private_rows_only_is_not_verified(
        ctx: JobContext, scored: tuple[int, dict[str, Any]], settings: Any) -> None:
    sid, values = scored
    public = PreparedData.open(settings.prepared_root / "NL").public
    changed = dict(values)
    # Scores of private rows reversed: the public split's AUCs stay exactly the file's.
    ctr = values["ctr"].copy()
    ctr[~np.asarray(public)] = 1.0 - ctr[~np.asarray(public)]
    changed["ctr"] = ctr
    vid = add_verification(ctx, sid)
    assert verify(ctx, vid, keyed(changed, settings)) == "done"
    ver = verification_row(ctx, vid)
    assert ver.verified is False
    assert ver.results is not None
    differing = int((np.abs(ctr - values["ctr"]) > 1e-4).sum())
    assert ver.results["rows"]["ctr"]["rows_over"] == differing > 0
    assert ver.results["rows"]["cvr"]["within_tolerance"] is True


def test_a_participant_error_fails_the_verification_at_once_with_its_reason(
        ctx: JobContext, scored: tuple[int, dict[str, Any]],
        enqueued: list[tuple[JobKind, int]]) -> None:
    def failing(*_args: Any, **_limits: Any) -> CheckpointRun:
        raise CheckpointFailed("the model raised IndexError: index out of range in self")

    vid = add_verification(ctx, scored[0])
    assert verify(ctx, vid, failing) == "failed"
    ver = verification_row(ctx, vid)
    assert (ver.state, ver.verified, ver.attempts) == ("failed", False, 1)
    assert ver.reason == "the model raised IndexError: index out of range in self"
    assert enqueued == []


def test_an_unexpected_error_puts_the_verification_back_until_its_attempts_are_spent(
        ctx: JobContext, scored: tuple[int, dict[str, Any]], settings: Any,
        enqueued: list[tuple[JobKind, int]]) -> None:
    def broken(*_args: Any, **_limits: Any) -> CheckpointRun:
        raise RuntimeError("a bug of ours")

    vid = add_verification(ctx, scored[0])
    for attempt in range(1, settings.max_attempts):
        assert verify(ctx, vid, broken) == "retry"
        ver = verification_row(ctx, vid)
        # Back in the queue at once, not left `running` until its lease ends.
        assert (ver.state, ver.lease_owner, ver.attempts) == ("queued", None, attempt)
        assert enqueued[-1] == ("verify", vid)
    assert verify(ctx, vid, broken) == "failed"
    ver = verification_row(ctx, vid)
    assert (ver.state, ver.verified) == ("failed", False)
    assert ver.reason == (f"internal error after {settings.max_attempts} attempts: "
                          "RuntimeError: a bug of ours")


def test_a_database_error_on_the_final_write_puts_the_job_back(
        ctx: JobContext, scored: tuple[int, dict[str, Any]], monkeypatch: pytest.MonkeyPatch,
        enqueued: list[tuple[JobKind, int]], settings: Any) -> None:
    from sqlalchemy.exc import OperationalError

    from app.jobs import verification as verification_module

    def cut_off(*_args: Any) -> dict[str, Any]:
        raise OperationalError("UPDATE verification", {}, Exception("server closed"))

    sid, values = scored
    vid = add_verification(ctx, sid)
    monkeypatch.setattr(verification_module.VerificationJob, "write", cut_off)
    assert verify(ctx, vid, keyed(values, settings)) == "retry"
    ver = verification_row(ctx, vid)
    assert (ver.state, ver.verified, ver.attempts) == ("queued", None, 1)
    assert enqueued == [("verify", vid)]
    monkeypatch.undo()
    assert verify(ctx, vid, keyed(values, settings)) == "done"
    assert verification_row(ctx, vid).verified is True


def score_rows(ctx: JobContext, sid: int) -> dict[str, int]:
    with ctx.factory() as session:
        rows = session.execute(select(Score.scorer_version, func.count()).where(
            Score.submission_id == sid).group_by(Score.scorer_version)).all()
    return {version: count for version, count in rows}


def test_a_rescore_whose_enqueue_was_lost_is_finished_by_the_reaper(
        ctx: JobContext, scored: tuple[int, dict[str, Any]], settings: Any,
        monkeypatch: pytest.MonkeyPatch, enqueued: list[tuple[JobKind, int]]) -> None:
    import evaluator.scoring as scoring

    sid, _ = scored
    monkeypatch.setattr(scoring, "SCORER_VERSION", "2")
    with ctx.factory() as session:
        plan = organiser.plan_rescore(session, None, [sid])
        session.commit()

    def down(_kind: JobKind, _row_id: int) -> None:
        raise ConnectionError("Redis is down")

    organiser.enqueue_all(plan, down)  # logged, not raised: the row is the record
    (rid,) = plan.rescore_ids
    with ctx.factory() as session:
        session.execute(update(Rescore).where(Rescore.id == rid).values(
            created_at=datetime.now(UTC) - timedelta(seconds=settings.requeue_seconds + 1)))
        session.commit()
    assert reap_and_requeue(ctx) == 1
    assert enqueued == [("rescore", rid)]
    assert rescore(ctx, rid) == "scored"
    # A second delivery of the same request runs nothing: the row's lease is spent.
    assert rescore(ctx, rid) == "skipped"
    assert score_rows(ctx, sid) == {"1": 9, "2": 9}
    with ctx.factory() as session:
        request = session.get(Rescore, rid)
        assert request is not None
        assert (request.state, request.attempts, request.lease_owner) == ("done", 1, None)
