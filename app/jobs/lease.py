"""One lease for every job row: claim, renew (a heartbeat), release, put back, reap.

A lease is `lease_owner` + `lease_expires_at` on the row, taken with one conditional UPDATE.
On PostgreSQL the claim first takes the row with SKIP LOCKED, so a worker never waits behind
another one that is claiming the same row. Every write after the claim is guarded by the lease:
a worker whose lease expired (and was taken over) writes nothing.

On a `queued` row `lease_expires_at` means "enqueue again if no worker took it by then": an
enqueue can be lost (Redis down or restarted empty, a worker that died before claiming), so the
reaper enqueues queued rows past that time and moves it on.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from app.db import transaction
from app.models import Rescore, Submission, Verification

from .context import JobContext

log = logging.getLogger(__name__)

LeasedModel = type[Submission] | type[Verification] | type[Rescore]
LeasedRow = Submission | Verification | Rescore


def utcnow() -> datetime:
    return datetime.now(UTC)


def requeue_at(ctx: JobContext, now: datetime) -> datetime:
    return now + timedelta(seconds=ctx.settings.requeue_seconds)


def _claimable(model: LeasedModel, row_id: int, now: datetime, max_attempts: int) -> Any:
    return and_(
        model.id == row_id,
        model.attempts < max_attempts,
        or_(model.state == "queued",
            and_(model.state == "running", model.lease_expires_at < now)),
    )


def taken(ctx: JobContext, model: LeasedModel, owner: str, now: datetime) -> dict[str, Any]:
    """What a claim writes on the row it takes (fair share's claim writes the same)."""
    return {"state": "running", "lease_owner": owner, "attempts": model.attempts + 1,
            "lease_expires_at": now + timedelta(seconds=ctx.settings.lease_seconds)}


def claim(ctx: JobContext, model: LeasedModel, row_id: int, owner: str,
          **values: Any) -> bool:
    """Take the lease on a queued row (or one whose lease expired). True if taken."""
    now = utcnow()
    condition = _claimable(model, row_id, now, ctx.settings.max_attempts)
    with transaction(ctx.factory) as session:
        if ctx.is_postgres:
            locked = session.execute(
                select(model.id).where(condition).with_for_update(skip_locked=True)
            ).scalar_one_or_none()
            if locked is None:
                return False
        result = session.execute(
            update(model).where(condition).values(**taken(ctx, model, owner, now), **values)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def held(model: LeasedModel, row_id: int, owner: str) -> Any:
    """The condition every write under a lease is guarded by."""
    return and_(model.id == row_id, model.lease_owner == owner, model.state == "running")


def renew(ctx: JobContext, model: LeasedModel, row_id: int, owner: str) -> bool:
    now = utcnow()
    with transaction(ctx.factory) as session:
        result = session.execute(
            update(model).where(held(model, row_id, owner))
            .values(lease_expires_at=now + timedelta(seconds=ctx.settings.lease_seconds))
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]


@contextmanager
def heartbeat(ctx: JobContext, model: LeasedModel, row_id: int, owner: str) -> Iterator[None]:
    """Renew the lease every heartbeat period until the block ends."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(ctx.settings.heartbeat_period):
            try:
                if not renew(ctx, model, row_id, owner):
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


def release(session: Session, model: LeasedModel, row_id: int, owner: str,
            **values: Any) -> bool:
    """End the lease with the row's final values, in the caller's transaction. False (and
    nothing written) when the lease is no longer ours."""
    result = session.execute(
        update(model).where(held(model, row_id, owner)).values(
            lease_owner=None, lease_expires_at=None, finished_at=utcnow(), **values,
        ).execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def failed_values(model: LeasedModel, reason: str) -> dict[str, Any]:
    """The final values of a job that failed for `reason`."""
    values: dict[str, Any] = {"state": "failed", "reason": reason[:4000]}
    if model is Verification:
        values["verified"] = False
    return values


def _give_up_or_requeue(ctx: JobContext, model: LeasedModel, row: LeasedRow, now: datetime,
                        reason: str) -> bool:
    """Out of attempts: fail the row with `reason`. Else queue it again. True if queued."""
    row.lease_owner = None
    row.lease_expires_at = None
    if row.attempts >= ctx.settings.max_attempts:
        for name, value in failed_values(model, reason).items():
            setattr(row, name, value)
        row.finished_at = now
        return False
    row.state = "queued"
    row.lease_expires_at = requeue_at(ctx, now)
    return True


class LeaseLost(Exception):
    """The row's lease is no longer ours: someone else owns the job now."""


def put_back(ctx: JobContext, model: LeasedModel, row_id: int, owner: str,
             reason: str) -> bool:
    """An unexpected error: queue the row again (True), or fail it once its attempts are spent
    (False). Raises LeaseLost when the row is no longer ours."""
    with transaction(ctx.factory) as session:
        row = cast(LeasedRow | None, session.get(model, row_id))
        if row is None or row.lease_owner != owner or row.state != "running":
            raise LeaseLost(f"{model.__tablename__} {row_id}")
        return _give_up_or_requeue(
            ctx, model, row, utcnow(), f"internal error after {row.attempts} attempts: {reason}")


def _stale_queued(model: LeasedModel, now: datetime, requeue_seconds: int) -> Any:
    """Queued rows no worker took in time: their enqueue was probably lost."""
    return and_(model.state == "queued", or_(
        model.lease_expires_at < now,
        and_(model.lease_expires_at.is_(None),
             model.created_at < now - timedelta(seconds=requeue_seconds))))


def reap(ctx: JobContext, model: LeasedModel) -> list[int]:
    """Put back the rows whose lease expired (their worker died), failing those out of
    attempts, and pick up queued rows whose enqueue was lost. Returns the ids to enqueue again,
    after this commit."""
    now = utcnow()
    requeue: list[int] = []
    with transaction(ctx.factory) as session:
        expired = select(model).where(model.state == "running", model.lease_expires_at < now)
        if ctx.is_postgres:
            expired = expired.with_for_update(skip_locked=True)
        for found in session.execute(expired).scalars():
            row = cast(LeasedRow, found)
            if _give_up_or_requeue(ctx, model, row, now, f"worker died {row.attempts} times"):
                requeue.append(row.id)
        stale = select(model.id).where(_stale_queued(model, now, ctx.settings.requeue_seconds))
        if ctx.is_postgres:
            stale = stale.with_for_update(skip_locked=True)
        ids = list(session.execute(stale).scalars())
        if ids:
            # Moved on, so a job waiting behind a long queue is enqueued again once per period,
            # not on every reaper pass.
            session.execute(update(model).where(model.id.in_(ids))
                            .values(lease_expires_at=requeue_at(ctx, now))
                            .execution_options(synchronize_session=False))
        requeue.extend(ids)
    return requeue


def hand_back(ctx: JobContext, model: LeasedModel, row_id: int, owner: str) -> bool:
    """Queue the row again without spending the attempt its claim took: the job stopped for a
    reason of the service's own (a shutdown, a full disk), not the submission's. False when the
    lease is no longer ours."""
    now = utcnow()
    with transaction(ctx.factory) as session:
        result = session.execute(
            update(model).where(held(model, row_id, owner)).values(
                state="queued", lease_owner=None, attempts=model.attempts - 1,
                lease_expires_at=requeue_at(ctx, now),
            ).execution_options(synchronize_session=False))
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def expire_leases_of(ctx: JobContext, model: LeasedModel, owner_prefix: str) -> int:
    """End now the leases held by a process known to be dead (`serve` saw its consumer exit):
    the next reaper pass puts them back without waiting for their expiry."""
    now = utcnow()
    with transaction(ctx.factory) as session:
        result = session.execute(
            update(model).where(model.state == "running",
                                model.lease_owner.startswith(owner_prefix, autoescape=True),
                                model.lease_expires_at > now)
            .values(lease_expires_at=now - timedelta(seconds=1))
            .execution_options(synchronize_session=False))
        return int(result.rowcount)  # type: ignore[attr-defined]


def missing_from_queue(ctx: JobContext, model: LeasedModel, in_queue: set[int],
                       settle_seconds: float) -> list[int]:
    """Queued rows the queue does not hold (Redis restarted empty, an enqueue that failed),
    enqueued last more than `settle_seconds` ago. They are marked as enqueued now in the same
    transaction, so two consumers checking at once do not both enqueue one row. Returns the
    ids to enqueue after the commit."""
    now = utcnow()
    settled = now - timedelta(seconds=settle_seconds)
    # A queued row's lease_expires_at is its last enqueue plus LB_REQUEUE_SECONDS (reap,
    # put_back, hand_back, this); without one, it was enqueued at its creation.
    last_enqueue_before = and_(model.state == "queued", or_(
        and_(model.lease_expires_at.is_(None), model.created_at < settled),
        model.lease_expires_at < requeue_at(ctx, settled)))
    with transaction(ctx.factory) as session:
        candidates = select(model.id).where(last_enqueue_before)
        if ctx.is_postgres:
            candidates = candidates.with_for_update(skip_locked=True)
        ids = [i for i in session.execute(candidates).scalars() if i not in in_queue]
        if ids:
            session.execute(update(model).where(model.id.in_(ids))
                            .values(lease_expires_at=requeue_at(ctx, now))
                            .execution_options(synchronize_session=False))
    return ids
