"""One wrapper runs every leased job and maps its outcome onto the row.

- the participant's error (a bad file, a failing checkpoint) → `failed`, with the reason;
- anything unexpected → back to the queue and enqueued again, failing once the attempts are
  spent;
- a database error on the final write → the same put-back: the transaction rolled back whole,
  and had the commit landed after all, the put-back finds the row no longer ours.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Literal, Protocol, TypeVar, cast

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from app.db import transaction
from app.storage import is_full
from evaluator.checkpoint import CheckpointFailed, CheckpointRejected
from evaluator.data.prepared import PreparedDataError
from evaluator.predictions import PredictionFileError

from . import fairshare, lease
from .context import JobContext, JobKind, new_owner

log = logging.getLogger(__name__)

Outcome = Literal["scored", "done", "failed", "skipped", "lease_lost", "retry"]
R = TypeVar("R")

# Expected, participant-facing failures: the job fails with the message as its reason.
USER_ERRORS: tuple[type[Exception], ...] = (
    PredictionFileError, CheckpointFailed, CheckpointRejected, PreparedDataError)


class Job(Protocol[R]):
    """One kind of job. `work` runs outside any transaction, under the lease's heartbeat;
    `write` stores its result in the transaction that releases the lease."""

    @property
    def kind(self) -> JobKind: ...

    @property
    def model(self) -> lease.LeasedModel: ...

    @property
    def done_outcome(self) -> Outcome: ...

    @property
    def user_errors(self) -> tuple[type[Exception], ...]: ...

    def claim_values(self) -> dict[str, Any]: ...

    def work(self, ctx: JobContext, row_id: int) -> R: ...

    def write(self, session: Session, row_id: int, result: R) -> dict[str, Any]:
        """Write what the result adds besides the row; return the row's final values."""
        ...


def reason_of(exc: BaseException) -> str:
    if isinstance(exc, PredictionFileError):
        lines = [exc.summary]
        for p in exc.problems[:20]:
            where = ", ".join(x for x in (f"row {p.row}" if p.row else "",
                                           f"column {p.column}" if p.column else "") if x)
            lines.append(f"{where}: {p.message}" if where else p.message)
        return "; ".join(lines)
    return str(exc) or type(exc).__name__


# The jobs this process holds a lease on, by owner: what a shutdown hands back
# (`app.jobs.liveness.hand_back_in_hand`).
IN_HAND: dict[str, tuple[JobKind, lease.LeasedModel, int]] = {}
IN_HAND_LOCK = threading.Lock()


def run(ctx: JobContext, job: Job[R], row_id: int) -> Outcome:
    owner = new_owner()
    if job.kind == "score" and ctx.settings.fair_share:
        # The message is a turn, not a name: the teams' fair share picks the submission.
        claimed = fairshare.claim_fair(ctx, row_id, owner, **job.claim_values())
        if claimed is None:
            return "skipped"
        row_id = claimed
    elif not lease.claim(ctx, job.model, row_id, owner, **job.claim_values()):
        return "skipped"
    with IN_HAND_LOCK:
        IN_HAND[owner] = (job.kind, job.model, row_id)
    try:
        return _run_claimed(ctx, job, row_id, owner)
    finally:
        with IN_HAND_LOCK:
            IN_HAND.pop(owner, None)


def _run_claimed(ctx: JobContext, job: Job[R], row_id: int, owner: str) -> Outcome:
    try:
        with lease.heartbeat(ctx, job.model, row_id, owner):
            result = job.work(ctx, row_id)
    except job.user_errors as exc:
        failed = lease.failed_values(job.model, reason_of(exc))
        return _finish(ctx, job, row_id, owner, lambda _session: failed, "failed")
    except Exception as exc:
        if _no_space(exc):
            return _wait_for_space(ctx, job, row_id, owner, exc)
        log.exception("%s job %s failed unexpectedly", job.kind, row_id)
        return _retry(ctx, job, row_id, owner, f"{type(exc).__name__}: {exc}")
    return _finish(ctx, job, row_id, owner,
                   lambda session: job.write(session, row_id, result), job.done_outcome)


def _no_space(exc: BaseException) -> bool:
    """ENOSPC/EDQUOT anywhere in the chain: the disk under the store is full."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if is_full(current):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _wait_for_space(ctx: JobContext, job: Job[Any], row_id: int, owner: str,
                    exc: BaseException) -> Outcome:
    """A full disk is the service's fault, not the submission's: back to the queue without
    spending the attempt, to run again once there may be room (`/health` says degraded)."""
    log.warning("%s job %s met a full disk (%s); waiting %.0f s, no attempt spent",
                job.kind, row_id, exc, ctx.settings.no_space_retry_seconds)
    try:
        if not lease.hand_back(ctx, job.model, row_id, owner):
            return "lease_lost"
        ctx.enqueue_after(job.kind, row_id, ctx.settings.no_space_retry_seconds)
    except Exception:
        log.exception("putting back %s job %s failed; the queue check will", job.kind, row_id)
    return "retry"


def retry_delay(ctx: JobContext, attempts: int) -> float:
    """Exponential backoff: LB_RETRY_BACKOFF_SECONDS after the first attempt, doubling."""
    base = ctx.settings.retry_backoff_seconds
    return float(min(ctx.settings.retry_backoff_max_seconds,
                     base * 2 ** max(0, min(attempts - 1, 30))))


def _finish(ctx: JobContext, job: Job[Any], row_id: int, owner: str,
            final_values: Callable[[Session], dict[str, Any]], outcome: Outcome) -> Outcome:
    try:
        with transaction(ctx.factory) as session:
            values = final_values(session)
            if not lease.release(session, job.model, row_id, owner, **values):
                # The lease expired and someone else owns the job now: write nothing.
                session.rollback()
                return "lease_lost"
    except DBAPIError as exc:
        log.exception("writing the result of %s job %s failed", job.kind, row_id)
        return _retry(ctx, job, row_id, owner, f"{type(exc).__name__}: {exc}")
    return outcome


def _attempts(ctx: JobContext, job: Job[Any], row_id: int) -> int:
    with ctx.factory() as session:
        row = cast(lease.LeasedRow | None, session.get(job.model, row_id))
        return int(row.attempts) if row is not None else 1


def _retry(ctx: JobContext, job: Job[Any], row_id: int, owner: str, reason: str) -> Outcome:
    """Put the job back and enqueue it after a backoff (`retry_delay`); if even that fails (the
    database is still down), the lease expires and the reaper does it later."""
    try:
        if not lease.put_back(ctx, job.model, row_id, owner, reason):
            return "failed"
        ctx.enqueue_after(job.kind, row_id, retry_delay(ctx, _attempts(ctx, job, row_id)))
    except lease.LeaseLost:
        return "lease_lost"
    except Exception:
        log.exception("putting back %s job %s failed; the reaper will", job.kind, row_id)
    return "retry"
