"""Scoring and verification jobs. The database is the truth; the queue only says "look at N".

A worker takes a lease on a submission with one conditional UPDATE, renews it from a heartbeat
thread while it works, and writes the scores and the state change in one transaction guarded by
the lease. A reaper puts back submissions whose lease expired (a worker died), a bounded number
of times. Huey retries a task that raised (app.queue: a claim that met a locked database)
but delivers at most once otherwise, so a dead worker's job is the reaper's, not the queue's.

An enqueue can be lost too (Redis down at upload time, Redis restarted without persistence, a
worker that died before claiming). So on a `queued` row `lease_expires_at` means "enqueued again
if no worker took it by then": the reaper enqueues queued rows past that time (or, when it was
never set, older than `requeue_seconds`) and moves it on. A job in the queue twice is harmless:
the claim lets one delivery score it, the other is skipped.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Engine, and_, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.db import make_engine, session_factory, transaction
from app.models import Score, Submission, Verification
from app.storage import ArtifactStore, save_predictions
from evaluator.checkpoint import (
    CheckpointFailed,
    CheckpointRejected,
    parse_outputs,
    run_checkpoint,
)
from evaluator.data.prepared import PreparedData, PreparedDataError
from evaluator.predictions import PredictionFileError, Predictions, parse_prediction_file
from evaluator.scoring import SCORER_VERSION, ScoreReport, score_predictions

log = logging.getLogger(__name__)

Outcome = Literal["scored", "failed", "skipped", "lease_lost", "retry"]
# Expected, participant-facing failures: the submission fails with this message as its reason.
_USER_ERRORS = (PredictionFileError, CheckpointFailed, CheckpointRejected, PreparedDataError)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class WorkerContext:
    settings: Settings
    engine: Engine
    factory: sessionmaker[Session]
    store: ArtifactStore

    @classmethod
    def create(cls, settings: Settings) -> WorkerContext:
        engine = make_engine(settings)
        return cls(settings, engine, session_factory(engine), ArtifactStore.of(settings))

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"


def new_owner() -> str:
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


# ------------------------------------------------------------------------------------ lease


def _claimable(now: datetime, max_attempts: int) -> Any:
    return and_(
        Submission.attempts < max_attempts,
        or_(Submission.state == "queued",
            and_(Submission.state == "running", Submission.lease_expires_at < now)),
    )


def claim(ctx: WorkerContext, submission_id: int, owner: str) -> bool:
    """Take the lease on a queued submission (or one whose lease expired). True if taken."""
    now = utcnow()
    condition = and_(Submission.id == submission_id, _claimable(now, ctx.settings.max_attempts))
    with transaction(ctx.factory) as session:
        if ctx.is_postgres:
            # Another worker already holding the row lock is working on it: skip, don't wait.
            locked = session.execute(
                select(Submission.id).where(condition).with_for_update(skip_locked=True)
            ).scalar_one_or_none()
            if locked is None:
                return False
        result = session.execute(
            update(Submission).where(condition).values(
                state="running", lease_owner=owner,
                lease_expires_at=now + timedelta(seconds=ctx.settings.lease_seconds),
                attempts=Submission.attempts + 1, started_at=now,
            ).execution_options(synchronize_session=False)
        )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]


Leased = type[Submission] | type[Verification]


def renew(ctx: WorkerContext, row_id: int, owner: str, model: Leased = Submission) -> bool:
    now = utcnow()
    with transaction(ctx.factory) as session:
        result = session.execute(
            update(model)
            .where(model.id == row_id, model.lease_owner == owner, model.state == "running")
            .values(lease_expires_at=now + timedelta(seconds=ctx.settings.lease_seconds))
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]


@contextmanager
def heartbeat(ctx: WorkerContext, row_id: int, owner: str,
              model: Leased = Submission) -> Iterator[None]:
    """Renew the lease every heartbeat period until the block ends."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(ctx.settings.heartbeat_period):
            try:
                if not renew(ctx, row_id, owner, model):
                    return
            except Exception:  # a DB hiccup: the next beat tries again before expiry
                log.exception("lease renewal of %s %s failed", model.__tablename__, row_id)

    thread = threading.Thread(target=beat, name=f"heartbeat-{row_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _release_where(submission_id: int, owner: str) -> Any:
    return and_(Submission.id == submission_id, Submission.lease_owner == owner,
                Submission.state == "running")


def _finish_failed(ctx: WorkerContext, submission_id: int, owner: str, reason: str) -> Outcome:
    with transaction(ctx.factory) as session:
        result = session.execute(
            update(Submission).where(_release_where(submission_id, owner)).values(
                state="failed", reason=reason[:4000], finished_at=utcnow(),
                lease_owner=None, lease_expires_at=None,
            ).execution_options(synchronize_session=False)
        )
        return "failed" if result.rowcount == 1 else "lease_lost"  # type: ignore[attr-defined]


def _put_back(ctx: WorkerContext, submission_id: int, owner: str, reason: str) -> Outcome:
    """An unexpected error: try again later, or fail once the attempts are spent."""
    with transaction(ctx.factory) as session:
        sub = session.get(Submission, submission_id)
        if sub is None or sub.lease_owner != owner or sub.state != "running":
            return "lease_lost"
        sub.lease_owner = None
        sub.lease_expires_at = None
        if sub.attempts >= ctx.settings.max_attempts:
            sub.state = "failed"
            sub.reason = f"internal error after {sub.attempts} attempts: {reason}"[:4000]
            sub.finished_at = utcnow()
            return "failed"
        sub.state = "queued"
        sub.lease_expires_at = _requeue_at(ctx, utcnow())
    return "retry"


# ---------------------------------------------------------------------------------- scoring


def upsert_scores(session: Session, submission_id: int, report: ScoreReport) -> None:
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


def prepared_for(settings: Settings, country: str) -> PreparedData:
    return PreparedData.open(settings.prepared_root / country)


def compute_predictions(ctx: WorkerContext, sub: Submission,
                        data: PreparedData) -> Predictions:
    """The submission's predictions: its file when it has one, else its checkpoint's output."""
    if sub.file_sha256:
        return parse_prediction_file(ctx.store.path(sub.file_sha256), data.n_rows)
    if sub.checkpoint_sha256:
        run = run_checkpoint(ctx.store.path(sub.checkpoint_sha256), data.path,
                             parse_outputs(sub.outputs or "ctr,cvr"))
        return run.to_predictions()
    raise PreparedDataError("submission has neither a prediction file nor a checkpoint")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, PredictionFileError):
        lines = [exc.summary]
        for p in exc.problems[:20]:
            where = ", ".join(x for x in (f"row {p.row}" if p.row else "",
                                           f"column {p.column}" if p.column else "") if x)
            lines.append(f"{where}: {p.message}" if where else p.message)
        return "; ".join(lines)
    return str(exc) or type(exc).__name__


def score_submission(ctx: WorkerContext, submission_id: int) -> Outcome:
    """The one scoring code path (queue task, tests, re-scoring)."""
    with ctx.factory() as session:
        sub = session.get(Submission, submission_id)
        if sub is None:
            return "skipped"
        state = sub.state
    if state == "scored":
        return rescore(ctx, submission_id)
    owner = new_owner()
    if not claim(ctx, submission_id, owner):
        return "skipped"
    with ctx.factory() as session:
        sub = session.get(Submission, submission_id)
        assert sub is not None
        session.expunge(sub)
    try:
        with heartbeat(ctx, submission_id, owner):
            data = prepared_for(ctx.settings, sub.country)
            predictions = compute_predictions(ctx, sub, data)
            report = score_predictions(data, predictions)
            predictions_sha = save_predictions(ctx.store, predictions)
    except _USER_ERRORS as exc:
        return _finish_failed(ctx, submission_id, owner, _reason(exc))
    except Exception as exc:
        log.exception("scoring submission %s failed unexpectedly", submission_id)
        return _retry(ctx, submission_id, owner, f"{type(exc).__name__}: {exc}")
    try:
        return _write_scores(ctx, submission_id, owner, report, predictions_sha)
    except DBAPIError as exc:
        # The database went away mid-commit: the transaction rolled back whole (the state and
        # all nine scores, or nothing). Had the commit landed after all, the put-back finds the
        # row no longer ours and leaves it.
        log.exception("writing the scores of submission %s failed", submission_id)
        return _retry(ctx, submission_id, owner, f"{type(exc).__name__}: {exc}")


def _retry(ctx: WorkerContext, submission_id: int, owner: str, reason: str) -> Outcome:
    """Put the job back and enqueue it now; if even that fails (the database is still down),
    the lease expires and the reaper does it later."""
    try:
        outcome = _put_back(ctx, submission_id, owner, reason)
        if outcome == "retry":
            from app.queue import enqueue_scoring

            enqueue_scoring(submission_id)
    except Exception:
        log.exception("putting back submission %s failed; the reaper will", submission_id)
        return "retry"
    return outcome


def _write_scores(ctx: WorkerContext, submission_id: int, owner: str, report: ScoreReport,
                  predictions_sha: str) -> Outcome:
    """The state change and every score row in one transaction, guarded by the lease."""
    with transaction(ctx.factory) as session:
        result = session.execute(
            update(Submission).where(_release_where(submission_id, owner)).values(
                state="scored", reason=None, finished_at=utcnow(), lease_owner=None,
                lease_expires_at=None, predictions_sha256=predictions_sha,
            ).execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            # The lease expired and someone else owns the job now: write nothing.
            session.rollback()
            return "lease_lost"
        upsert_scores(session, submission_id, report)
    return "scored"


def rescore(ctx: WorkerContext, submission_id: int) -> Outcome:
    """Score a scored submission under the installed scorer version; old versions stay."""
    with ctx.factory() as session:
        sub = session.get(Submission, submission_id)
        if sub is None or sub.state != "scored":
            return "skipped"
        have = session.execute(select(func.count()).select_from(Score).where(
            Score.submission_id == submission_id, Score.scorer_version == SCORER_VERSION)
        ).scalar_one()
        session.expunge(sub)
    if have:
        return "skipped"
    data = prepared_for(ctx.settings, sub.country)
    try:
        predictions = compute_predictions(ctx, sub, data)
    except _USER_ERRORS as exc:
        log.warning("re-scoring submission %s failed: %s", submission_id, exc)
        return "failed"
    report = score_predictions(data, predictions)
    with transaction(ctx.factory) as session:
        upsert_scores(session, submission_id, report)
    return "scored"


# ----------------------------------------------------------------------------------- reaper


def _requeue_at(ctx: WorkerContext, now: datetime) -> datetime:
    return now + timedelta(seconds=ctx.settings.requeue_seconds)


def _stale_queued(model: Leased, now: datetime, requeue_seconds: int) -> Any:
    """Queued rows no worker took in time: their enqueue was probably lost."""
    return and_(model.state == "queued", or_(
        model.lease_expires_at < now,
        and_(model.lease_expires_at.is_(None),
             model.created_at < now - timedelta(seconds=requeue_seconds))))


def _requeue_stale(session: Session, ctx: WorkerContext, model: Leased,
                   now: datetime) -> list[int]:
    query = select(model.id).where(_stale_queued(model, now, ctx.settings.requeue_seconds))
    if ctx.is_postgres:
        query = query.with_for_update(skip_locked=True)
    ids = list(session.execute(query).scalars())
    if ids:
        # Moved on, so a job waiting behind a long queue is enqueued again once per period,
        # not on every reaper pass.
        session.execute(update(model).where(model.id.in_(ids))
                        .values(lease_expires_at=_requeue_at(ctx, now))
                        .execution_options(synchronize_session=False))
    return ids


def reap(ctx: WorkerContext) -> list[int]:
    """Put back submissions whose lease expired; fail those out of attempts; pick up queued
    submissions whose enqueue was lost. Returns the ids to enqueue again (the caller enqueues
    after this commit)."""
    now = utcnow()
    requeue: list[int] = []
    with transaction(ctx.factory) as session:
        query = select(Submission).where(Submission.state == "running",
                                         Submission.lease_expires_at < now)
        if ctx.is_postgres:
            query = query.with_for_update(skip_locked=True)
        for sub in session.execute(query).scalars():
            sub.lease_owner = None
            sub.lease_expires_at = None
            if sub.attempts >= ctx.settings.max_attempts:
                sub.state = "failed"
                sub.reason = f"worker died {sub.attempts} times"
                sub.finished_at = now
            else:
                sub.state = "queued"
                sub.lease_expires_at = _requeue_at(ctx, now)
                requeue.append(sub.id)
        requeue.extend(_requeue_stale(session, ctx, Submission, now))
    return requeue


def reap_verifications(ctx: WorkerContext) -> list[int]:
    """The same for verifications; returns the verification ids to enqueue again."""
    now = utcnow()
    requeue: list[int] = []
    with transaction(ctx.factory) as session:
        query = select(Verification).where(Verification.state == "running",
                                           Verification.lease_expires_at < now)
        if ctx.is_postgres:
            query = query.with_for_update(skip_locked=True)
        for ver in session.execute(query).scalars():
            ver.lease_owner = None
            ver.lease_expires_at = None
            if ver.attempts >= ctx.settings.max_attempts:
                ver.state, ver.verified = "failed", False
                ver.reason = f"worker died {ver.attempts} times"
                ver.finished_at = now
            else:
                ver.state = "queued"
                ver.lease_expires_at = _requeue_at(ctx, now)
                requeue.append(ver.id)
        requeue.extend(_requeue_stale(session, ctx, Verification, now))
    return requeue


# ----------------------------------------------------------------------------- verification


def claim_verification(ctx: WorkerContext, verification_id: int, owner: str) -> bool:
    now = utcnow()
    condition = and_(
        Verification.id == verification_id,
        Verification.attempts < ctx.settings.max_attempts,
        or_(Verification.state == "queued",
            and_(Verification.state == "running", Verification.lease_expires_at < now)),
    )
    with transaction(ctx.factory) as session:
        result = session.execute(
            update(Verification).where(condition).values(
                state="running", lease_owner=owner, attempts=Verification.attempts + 1,
                lease_expires_at=now + timedelta(seconds=ctx.settings.lease_seconds),
            ).execution_options(synchronize_session=False)
        )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def _finish_verification(ctx: WorkerContext, verification_id: int, owner: str,
                         **values: Any) -> str:
    with transaction(ctx.factory) as session:
        result = session.execute(
            update(Verification)
            .where(Verification.id == verification_id, Verification.lease_owner == owner,
                   Verification.state == "running")
            .values(lease_owner=None, lease_expires_at=None, finished_at=utcnow(), **values)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            return "lease_lost"
    return str(values["state"])


def verify(ctx: WorkerContext, verification_id: int,
           runner: Callable[..., Any] = run_checkpoint) -> str:
    """Run the submission's checkpoint and compare its AUCs with its file's stored scores."""
    owner = new_owner()
    if not claim_verification(ctx, verification_id, owner):
        return "skipped"
    with ctx.factory() as session:
        ver = session.get(Verification, verification_id)
        assert ver is not None
        sub = session.get(Submission, ver.submission_id)
        assert sub is not None
        session.expunge(sub)
        tolerance = ver.tolerance
        file_scores = {
            s.task: s.auc for s in session.execute(select(Score).where(
                Score.submission_id == sub.id, Score.scorer_version == SCORER_VERSION,
                Score.split == "full")).scalars()
        }
    started = time.monotonic()
    try:
        with heartbeat(ctx, verification_id, owner, Verification):
            if not sub.checkpoint_sha256:
                raise CheckpointFailed("the submission has no checkpoint")
            data = prepared_for(ctx.settings, sub.country)
            run = runner(ctx.store.path(sub.checkpoint_sha256), data.path,
                         parse_outputs(sub.outputs or "ctr,cvr"))
            report = score_predictions(data, run.to_predictions())
    except (*_USER_ERRORS, ValueError) as exc:
        return _finish_verification(ctx, verification_id, owner, state="failed",
                                    verified=False, reason=_reason(exc)[:4000],
                                    duration_s=time.monotonic() - started)
    results: dict[str, Any] = {}
    verified = True
    for task, score in report.scores["full"].items():
        file_auc, ckpt_auc = file_scores.get(task), score.auc
        if file_auc is None or ckpt_auc is None:
            diff = None
            ok = file_auc is None and ckpt_auc is None
        else:
            diff = abs(file_auc - ckpt_auc)
            ok = diff <= tolerance
        verified = verified and ok
        results[task] = {"file_auc": file_auc, "ckpt_auc": ckpt_auc, "diff": diff,
                         "within_tolerance": ok}
    return _finish_verification(ctx, verification_id, owner, state="done", verified=verified,
                                results=results, torch_version=run.torch_version,
                                device=run.device, duration_s=time.monotonic() - started)
