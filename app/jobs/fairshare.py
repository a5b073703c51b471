"""Fair share of the workers between teams, decided when a worker takes a scoring job.

A queue message names one submission, but messages are only tokens: a worker popping one runs
the submission the teams' turn says is next, not necessarily the one named. The rule: the team
with the fewest running jobs goes first, so no team holds a second worker while another team's
job waits; among those, the team that started a job least recently (never first); within a
team, its oldest submission. The named submission, if not taken, stays `queued` and its
message's turn comes with some other message (each message still runs one job, so none is
lost; a message that finds nothing to run is dropped, as a duplicate is today).

Claims are serialised (PostgreSQL: a transaction-level advisory lock; SQLite: the database's
write lock, taken first), so two workers cannot both see a team with nothing running and each
start one of its jobs. A claim holds the lock for one short transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, func, or_, select, text, update
from sqlalchemy.orm import Session

from app.db import transaction
from app.models import ChallengeState, Submission

from . import lease
from .context import JobContext
from .lease import utcnow

# Any constant: it names this lock among the advisory locks of the database.
_ADVISORY_KEY = 0x4C42_4641  # "LBFA"


def _serialise(session: Session, is_postgres: bool) -> None:
    if is_postgres:
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_KEY})
    else:
        # A write as the transaction's first statement takes SQLite's write lock now, so the
        # reads that follow see every claim committed before ours and none can interleave.
        session.execute(update(ChallengeState).where(ChallengeState.id == 0)
                        .values(revealed=ChallengeState.revealed)
                        .execution_options(synchronize_session=False))


def claimable(now: datetime, max_attempts: int) -> Any:
    return and_(
        Submission.attempts < max_attempts,
        or_(Submission.state == "queued",
            and_(Submission.state == "running", Submission.lease_expires_at < now)),
    )


TeamKey = tuple[int, int, datetime | None]


def _team_keys(now: datetime) -> tuple[Any, Any]:
    running = (select(Submission.team_id, func.count().label("n"))
               .where(Submission.state == "running", Submission.lease_expires_at >= now)
               .group_by(Submission.team_id).subquery())
    last = (select(Submission.team_id, func.max(Submission.started_at).label("at"))
            .where(Submission.started_at.is_not(None))
            .group_by(Submission.team_id).subquery())
    return running, last


def next_submission(session: Session, now: datetime, max_attempts: int,
                    named: int | None = None) -> int | None:
    """The id of the submission a free worker should run now, or None when none waits.

    `named` (the message's submission) is run when its team's turn is as good as the best
    team's, so a message runs what it names whenever fairness allows."""
    running, last = _team_keys(now)
    n_running = func.coalesce(running.c.n, 0)
    never = case((last.c.at.is_(None), 0), else_=1)
    query = (
        select(Submission.id, Submission.team_id, n_running, never, last.c.at)
        .outerjoin(running, running.c.team_id == Submission.team_id)
        .outerjoin(last, last.c.team_id == Submission.team_id)
        .where(claimable(now, max_attempts))
    )
    best = session.execute(
        query.order_by(n_running, never, last.c.at, Submission.id).limit(1)).one_or_none()
    if best is None:
        return None
    if named is not None and named != best[0]:
        mine = session.execute(query.where(Submission.id == named)).one_or_none()
        if mine is not None and tuple(mine[2:]) == tuple(best[2:]):
            return named
    return int(best[0])


def claim_fair(ctx: JobContext, named: int, owner: str, **values: Any) -> int | None:
    """Take the lease on the submission whose turn it is (`named` when fairness allows); its
    id, or None when none waits."""
    now = utcnow()
    with transaction(ctx.factory) as session:
        _serialise(session, ctx.is_postgres)
        chosen = next_submission(session, now, ctx.settings.max_attempts, named)
        if chosen is None:
            return None
        result = session.execute(
            update(Submission)
            # lease.claim's own condition and values
            .where(lease._claimable(Submission, chosen, now, ctx.settings.max_attempts))
            .values(**lease.taken(ctx, Submission, owner, now), **values)
            .execution_options(synchronize_session=False))
        return chosen if result.rowcount == 1 else None  # type: ignore[attr-defined]
