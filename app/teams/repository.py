"""All SQL of the teams domain."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import ApiToken, Team


def by_name(session: Session, name: str) -> Team | None:
    return session.execute(select(Team).where(Team.name == name)).scalar_one_or_none()


def all_teams(session: Session) -> Sequence[Team]:
    return session.execute(select(Team).order_by(Team.id)).scalars().all()


def tokens_by_team(session: Session) -> dict[int, list[ApiToken]]:
    """Every token, grouped by team: one query for a listing of all teams."""
    grouped: dict[int, list[ApiToken]] = {}
    for token in session.execute(select(ApiToken).order_by(ApiToken.id)).scalars():
        grouped.setdefault(token.team_id, []).append(token)
    return grouped


def tokens_of(session: Session, team_id: int) -> Sequence[ApiToken]:
    return session.execute(select(ApiToken).where(ApiToken.team_id == team_id)
                           .order_by(ApiToken.id)).scalars().all()
