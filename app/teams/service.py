"""Team and token use cases (API and CLI). They flush; the caller commits."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app import audit
from app.auth import IssuedToken, issue_token
from app.errors import Conflict, Invalid, NotFound
from app.models import ApiToken, Team
from app.teams import repository as repo
from app.teams.schemas import TeamOut, TokenOut

MAX_NAME = 100


def clean_name(name: str) -> str:
    text = " ".join(name.split())
    if not text or len(text) > MAX_NAME:
        raise Invalid(f"team name: 1 to {MAX_NAME} characters", code="invalid_field")
    if any(unicodedata.category(ch).startswith("C") for ch in text):
        raise Invalid("team name: control characters are not allowed", code="invalid_field")
    return text


def create_team(session: Session, actor: Team | None, name: str, *, organiser: bool = False,
                baseline: bool = False) -> tuple[Team, IssuedToken]:
    clean = clean_name(name)
    if repo.by_name(session, clean) is not None:
        raise Conflict(f"a team named {clean!r} exists already", code="team_exists")
    team = Team(name=clean, is_organiser=organiser, is_baseline=baseline)
    try:
        # A savepoint: a concurrent twin that committed first fails only this insert.
        with session.begin_nested():
            session.add(team)
            session.flush()
    except IntegrityError:
        raise Conflict(f"a team named {clean!r} exists already", code="team_exists") from None
    issued = issue_token(session, team)
    audit.record(session, actor, "create_team", "team", team.id,
                 {"name": clean, "organiser": organiser, "baseline": baseline})
    return team, issued


def create_token(session: Session, actor: Team | None, team_id: int) -> IssuedToken:
    team = session.get(Team, team_id)
    if team is None:
        raise NotFound(f"no team {team_id}")
    issued = issue_token(session, team)
    audit.record(session, actor, "create_token", "team", team.id,
                 {"token_id": issued.token.id, "prefix": issued.token.prefix})
    return issued


def revoke_token(session: Session, actor: Team | None, token_id: int) -> ApiToken:
    token = session.get(ApiToken, token_id)
    if token is None:
        raise NotFound(f"no token {token_id}")
    if token.revoked_at is None:
        token.revoked_at = datetime.now(UTC)
        audit.record(session, actor, "revoke_token", "team", token.team_id,
                     {"token_id": token.id, "prefix": token.prefix})
    session.flush()
    return token


def team_out(team: Team) -> TeamOut:
    return TeamOut(id=team.id, name=team.name, is_organiser=team.is_organiser,
                   is_baseline=team.is_baseline, created_at=team.created_at)


def token_out(token: ApiToken) -> TokenOut:
    return TokenOut(id=token.id, team_id=token.team_id, prefix=token.prefix,
                    created_at=token.created_at, revoked_at=token.revoked_at,
                    last_used_at=token.last_used_at)
