"""All SQL of the submissions domain."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.models import Score, Submission, Team, Verification


def lock_team(session: Session, team_id: int) -> None:
    """Serialise a team's quota check and insert: a no-op write takes the row lock (PostgreSQL)
    or the database write lock (SQLite) until the transaction ends."""
    session.execute(update(Team).where(Team.id == team_id).values(name=Team.name)
                    .execution_options(synchronize_session=False))


def by_idempotency_key(session: Session, team_id: int, key: str) -> Submission | None:
    return session.execute(select(Submission).where(
        Submission.team_id == team_id, Submission.idempotency_key == key)).scalar_one_or_none()


def count_since(session: Session, team_id: int, since: datetime) -> int:
    return int(session.execute(
        select(func.count()).select_from(Submission).where(
            Submission.team_id == team_id, Submission.created_at >= since,
            Submission.state != "failed")
    ).scalar_one())


def get(session: Session, submission_id: int) -> Submission | None:
    return session.get(Submission, submission_id)


def of_team(session: Session, team_id: int, limit: int, offset: int) -> Sequence[Submission]:
    return session.execute(
        select(Submission).where(Submission.team_id == team_id)
        .order_by(Submission.id.desc()).limit(limit).offset(offset)
    ).scalars().all()


def scores_of(session: Session, submission_ids: Sequence[int]) -> Sequence[Score]:
    if not submission_ids:
        return []
    return session.execute(
        select(Score).where(Score.submission_id.in_(submission_ids)).order_by(Score.id)
    ).scalars().all()


def team_names(session: Session, team_ids: Sequence[int]) -> dict[int, str]:
    rows = session.execute(select(Team.id, Team.name).where(Team.id.in_(set(team_ids))))
    return {row.id: row.name for row in rows}


def verifications_of(session: Session, submission_id: int) -> Sequence[Verification]:
    return session.execute(select(Verification).where(
        Verification.submission_id == submission_id).order_by(Verification.id.desc())
    ).scalars().all()
