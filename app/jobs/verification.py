"""Verification: run a submission's checkpoint and compare it with the submission's file.

The comparison is the evaluator's (`compare_reports`), on every split and task. The stored
`results` keep one entry per task: the full split's AUCs, the largest difference over the
splits, whether every split is within the tolerance, and each split's comparison.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Score, Submission, Verification
from evaluator import scoring
from evaluator.checkpoint import CheckpointFailed, CheckpointRun, parse_outputs, run_checkpoint
from evaluator.checkpoint.verify import ReportComparison as Comparison
from evaluator.checkpoint.verify import compare_reports
from evaluator.schema import TASKS, Split, Task
from evaluator.scoring import ScoreReport, TaskScore, score_predictions

from . import runner
from .context import JobContext, JobKind
from .runner import Outcome
from .scoring import prepared_for

Runner = Callable[..., CheckpointRun]


def stored_report(session: Session, submission_id: int) -> ScoreReport:
    """The file's scores under the installed scorer version, as the evaluator's report."""
    scores: dict[Split, dict[Task, TaskScore]] = {}
    for s in session.execute(select(Score).where(
            Score.submission_id == submission_id,
            Score.scorer_version == scoring.SCORER_VERSION)).scalars():
        split, task = cast(Split, s.split), cast(Task, s.task)
        scores.setdefault(split, {})[task] = TaskScore(
            s.auc, s.ci_low, s.ci_high, s.logloss, s.n_pos, s.n_neg, s.reason)
    return ScoreReport(scoring.SCORER_VERSION, scores)


def results_json(comparison: Comparison) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for task in TASKS:
        rows = [c for c in comparison.comparisons if c.task == task]
        full = next(c for c in rows if c.split == "full")
        diffs = [c.diff for c in rows if c.diff is not None]
        results[task] = {
            "file_auc": full.file_auc, "ckpt_auc": full.ckpt_auc,
            "diff": max(diffs) if diffs else None,
            "within_tolerance": all(c.within_tolerance for c in rows),
            "splits": {c.split: {"file_auc": c.file_auc, "ckpt_auc": c.ckpt_auc,
                                 "diff": c.diff, "within_tolerance": c.within_tolerance}
                       for c in rows},
        }
    return results


@dataclass(frozen=True)
class Verified:
    comparison: Comparison
    run: CheckpointRun
    duration_s: float


class VerificationJob:
    kind: JobKind = "verify"
    model = Verification
    done_outcome: Outcome = "done"
    # A checkpoint whose outputs do not fit the test set raises ValueError from the scorer.
    user_errors = (*runner.USER_ERRORS, ValueError)

    def __init__(self, run_checkpoint: Runner = run_checkpoint) -> None:
        self.run_checkpoint = run_checkpoint

    def claim_values(self) -> dict[str, Any]:
        return {}

    def work(self, ctx: JobContext, row_id: int) -> Verified:
        started = time.monotonic()
        with ctx.factory() as session:
            ver = session.get(Verification, row_id)
            assert ver is not None, "a claimed row exists"
            sub = session.get(Submission, ver.submission_id)
            assert sub is not None, "a verification's submission is never deleted"
            session.expunge(sub)
            tolerance = ver.tolerance
            from_file = stored_report(session, sub.id)
        if not sub.checkpoint_sha256:
            raise CheckpointFailed("the submission has no checkpoint")
        data = prepared_for(ctx, sub.country)
        run = self.run_checkpoint(ctx.store.path(sub.checkpoint_sha256), data.path,
                                  parse_outputs(sub.outputs or "ctr,cvr"))
        from_checkpoint = score_predictions(data, run.to_predictions())
        return Verified(compare_reports(from_file, from_checkpoint, tolerance), run,
                        time.monotonic() - started)

    def write(self, session: Session, row_id: int, result: Verified) -> dict[str, Any]:
        return {"state": "done", "verified": result.comparison.verified,
                "results": results_json(result.comparison),
                "torch_version": result.run.torch_version, "device": result.run.device,
                "duration_s": result.duration_s}


VERIFICATION = VerificationJob()


def verify(ctx: JobContext, verification_id: int,
           runner_: Runner | None = None) -> Outcome:
    job = VERIFICATION if runner_ is None else VerificationJob(runner_)
    return runner.run(ctx, job, verification_id)
