"""Verification: run a submission's checkpoint and compare it with the submission's file.

The verdict is the evaluator's row-by-row comparison (`evaluator.checkpoint.verify`): the
checkpoint's predictions must equal the file's on every row to within the tolerance, and a
second run on a copy of the test set with its rows shuffled (a fresh random order each time)
must give the same predictions, moved with their rows. No label is looked at. The stored
`results` keep, per output, the largest difference, how many rows are over the tolerance and
the first of them, for both comparisons, and what the mark certifies.
"""

from __future__ import annotations

import secrets
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from app.jobs.walltime import checkpoint_limits
from app.models import Submission, Verification
from evaluator.checkpoint import CheckpointFailed, CheckpointRun, parse_outputs, run_checkpoint
from evaluator.checkpoint.verify import (
    CERTIFIES,
    PredictionComparison,
    compare_permuted,
    compare_predictions,
    permuted_copy,
)
from evaluator.predictions import Predictions, parse_prediction_file

from . import runner
from .context import JobContext, JobKind
from .runner import Outcome
from .scoring import prepared_for

Runner = Callable[..., CheckpointRun]


def results_json(rows: PredictionComparison, permuted: PredictionComparison) -> dict[str, Any]:
    return {
        "rows": rows.to_json(),
        "permuted": permuted.to_json(),
        "certifies": CERTIFIES.format(tolerance=rows.tolerance),
    }


@dataclass(frozen=True)
class Verified:
    rows: PredictionComparison
    permuted: PredictionComparison
    run: CheckpointRun
    duration_s: float

    @property
    def verified(self) -> bool:
        return self.rows.verified and self.permuted.verified


class VerificationJob:
    kind: JobKind = "verify"
    model = Verification
    done_outcome: Outcome = "done"
    # A checkpoint whose outputs do not fit the test set raises ValueError from the comparison.
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
        if not sub.checkpoint_sha256:
            raise CheckpointFailed("the submission has no checkpoint")
        if not sub.file_sha256:
            raise CheckpointFailed("the submission has no prediction file to compare with")
        data = prepared_for(ctx, sub.country)
        file = parse_prediction_file(ctx.store.path(sub.file_sha256), data.n_rows)
        archive = ctx.store.path(sub.checkpoint_sha256)
        outputs = parse_outputs(sub.outputs or "ctr,cvr")
        # Both runs under the limit a scoring run of this test set gets.
        limits = checkpoint_limits(ctx.settings, data.n_rows)
        run = self.run_checkpoint(archive, data.path, outputs, limits=limits)
        plain = _fitting(run.to_predictions(), data.n_rows)
        # A fresh order per verification, so that no checkpoint can be built for it.
        order = np.random.default_rng(secrets.randbits(64)).permutation(data.n_rows)
        shuffled = ctx.store.tmp_dir / f"verify-{row_id}-{secrets.token_hex(8)}"
        try:
            permuted_copy(data, order, shuffled)
            permuted = _fitting(self.run_checkpoint(archive, shuffled, outputs,
                                                    limits=limits).to_predictions(),
                                data.n_rows)
        finally:
            shutil.rmtree(shuffled, ignore_errors=True)
        return Verified(compare_predictions(file, plain, tolerance),
                        compare_permuted(plain, permuted, order, tolerance), run,
                        time.monotonic() - started)

    def write(self, session: Session, row_id: int, result: Verified) -> dict[str, Any]:
        return {"state": "done", "verified": result.verified,
                "results": results_json(result.rows, result.permuted),
                "torch_version": result.run.torch_version, "device": result.run.device,
                "duration_s": result.duration_s}


def _fitting(predictions: Predictions, n_rows: int) -> Predictions:
    for task in ("ctr", "cvr", "ctcvr"):
        got = len(getattr(predictions, task))
        if got != n_rows:
            raise ValueError(f"the checkpoint gave {got} rows of {task}; the test set has "
                             f"{n_rows} rows")
    return predictions


VERIFICATION = VerificationJob()


def verify(ctx: JobContext, verification_id: int,
           runner_: Runner | None = None) -> Outcome:
    job = VERIFICATION if runner_ is None else VerificationJob(runner_)
    return runner.run(ctx, job, verification_id)
