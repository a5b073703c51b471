"""Scoring a submission, and scoring a scored one again under the installed scorer version."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from app.models import Rescore, Score, Submission
from app.storage import save_predictions
from evaluator import scoring
from evaluator.checkpoint import parse_outputs, run_checkpoint
from evaluator.data.prepared import PreparedData, PreparedDataError
from evaluator.predictions import Predictions, parse_prediction_file
from evaluator.scoring import ScoreReport, score_predictions

from . import lease, runner
from .context import JobContext, JobKind
from .output_order import output_order_warning
from .runner import Outcome
from .walltime import checkpoint_limits


def upsert_scores(session: Session, submission_id: int, report: ScoreReport) -> None:
    """Every score row of the report; a row already there (same version, split and task) is
    overwritten, so a job run twice leaves one set."""
    rows = [
        {"submission_id": submission_id, "scorer_version": report.scorer_version,
         "split": split, "task": task, "auc": s.auc, "ci_low": s.ci_low, "ci_high": s.ci_high,
         "logloss": s.logloss, "n_pos": s.n_pos, "n_neg": s.n_neg, "reason": s.reason}
        for split, tasks in report.scores.items() for task, s in tasks.items()
    ]
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = insert(Score).values(rows)
    stmt = stmt.on_conflict_do_update(
        index_elements=["submission_id", "scorer_version", "split", "task"],
        set_={name: stmt.excluded[name]
              for name in ("auc", "ci_low", "ci_high", "logloss", "n_pos", "n_neg", "reason")},
    )
    session.execute(stmt)


def prepared_for(ctx: JobContext, country: str) -> PreparedData:
    return PreparedData.open(ctx.settings.prepared_root / country)


def detached_submission(ctx: JobContext, submission_id: int) -> Submission:
    with ctx.factory() as session:
        sub = session.get(Submission, submission_id)
        if sub is None:
            raise PreparedDataError(f"submission {submission_id} is gone")
        session.expunge(sub)
        return sub


def compute_predictions(ctx: JobContext, sub: Submission, data: PreparedData) -> Predictions:
    """The submission's predictions: its file when it has one, else its checkpoint's output."""
    if sub.file_sha256:
        return parse_prediction_file(ctx.store.path(sub.file_sha256), data.n_rows)
    if sub.checkpoint_sha256:
        run = run_checkpoint(ctx.store.path(sub.checkpoint_sha256), data.path,
                             parse_outputs(sub.outputs or "ctr,cvr"),
                             limits=checkpoint_limits(ctx.settings, data.n_rows))
        return run.to_predictions()
    raise PreparedDataError("submission has neither a prediction file nor a checkpoint")


def score_afresh(ctx: JobContext, submission_id: int) -> tuple[ScoreReport, Predictions]:
    """The submission scored now, from its file or by running its checkpoint."""
    sub = detached_submission(ctx, submission_id)
    data = prepared_for(ctx, sub.country)
    predictions = compute_predictions(ctx, sub, data)
    return score_predictions(data, predictions), predictions


@dataclass(frozen=True)
class Scored:
    report: ScoreReport
    predictions_sha256: str
    output_warning: str | None = None


def checkpoint_warning(ctx: JobContext, submission_id: int,
                       predictions: Predictions) -> str | None:
    """For a submission scored by running its checkpoint: is its outputs' order suspect?"""
    sub = detached_submission(ctx, submission_id)
    if sub.file_sha256 or not sub.checkpoint_sha256:
        return None
    second = predictions.ctcvr if sub.outputs == "ctr,ctcvr" else predictions.cvr
    return output_order_warning(sub.outputs, predictions.ctr, second)


class ScoringJob:
    kind: JobKind = "score"
    model = Submission
    done_outcome: Outcome = "scored"
    user_errors = runner.USER_ERRORS

    def claim_values(self) -> dict[str, Any]:
        return {"started_at": lease.utcnow()}

    def work(self, ctx: JobContext, row_id: int) -> Scored:
        report, predictions = score_afresh(ctx, row_id)
        return Scored(report, save_predictions(ctx.store, predictions),
                      checkpoint_warning(ctx, row_id, predictions))

    def write(self, session: Session, row_id: int, result: Scored) -> dict[str, Any]:
        upsert_scores(session, row_id, result.report)
        return {"state": "scored", "reason": None,
                "predictions_sha256": result.predictions_sha256,
                "output_warning": result.output_warning}


class RescoreJob:
    kind: JobKind = "rescore"
    model = Rescore
    done_outcome: Outcome = "scored"
    user_errors = runner.USER_ERRORS

    def claim_values(self) -> dict[str, Any]:
        return {}

    def work(self, ctx: JobContext, row_id: int) -> tuple[int, ScoreReport | None]:
        with ctx.factory() as session:
            request = session.get(Rescore, row_id)
            assert request is not None, "a claimed row exists"
            submission_id = request.submission_id
            have = session.execute(select(func.count()).select_from(Score).where(
                Score.submission_id == submission_id,
                Score.scorer_version == scoring.SCORER_VERSION)).scalar_one()
        if have:
            # Already scored under this version (an earlier run of the same request, or a
            # second request): nothing to run.
            return submission_id, None
        return submission_id, score_afresh(ctx, submission_id)[0]

    def write(self, session: Session, row_id: int,
              result: tuple[int, ScoreReport | None]) -> dict[str, Any]:
        submission_id, report = result
        if report is not None:
            upsert_scores(session, submission_id, report)
        return {"state": "done", "reason": None}


SCORING = ScoringJob()
RESCORE = RescoreJob()


def score_submission(ctx: JobContext, submission_id: int) -> Outcome:
    """The one scoring code path (queue task, tests)."""
    return runner.run(ctx, SCORING, submission_id)


def rescore(ctx: JobContext, rescore_id: int) -> Outcome:
    """Run a recorded rescore request; the submission's old scores stay."""
    return runner.run(ctx, RESCORE, rescore_id)
