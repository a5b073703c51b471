"""Request dependencies: settings, a DB session, the queue, the calling team. Headers only,
never the body."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from app.auth import team_for_token
from app.config import Settings
from app.errors import Forbidden, Unauthorized
from app.jobs.context import Enqueue
from app.models import Team

_bearer = HTTPBearer(auto_error=False, description="the team's API token")


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_session(request: Request) -> Iterator[Session]:
    """A session for the request. Routers commit; anything left uncommitted is rolled back."""
    session: Session = request.app.state.session_factory()
    try:
        yield session
    finally:
        session.rollback()
        session.close()


# Ids are 32-bit INTEGER columns: a larger path id is a 422, never a driver overflow (500).
MAX_ID = 2**31 - 1
IdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="a positive id")]


def parse_id(raw: str) -> int | None:
    """A page's id from its path text, or None: checked by length before `int`, which refuses
    over 4,300 digits with an exception."""
    if not (raw.isascii() and raw.isdigit()) or len(raw) > len(str(MAX_ID)):
        return None
    value = int(raw)
    return value if 0 < value <= MAX_ID else None


def get_enqueue(request: Request) -> Enqueue:
    """The app's queue, injected: routes hand jobs to it after their commit."""
    enqueue: Enqueue = request.app.state.queue.enqueue
    return enqueue


SettingsDep = Annotated[Settings, Depends(get_settings)]
EnqueueDep = Annotated[Enqueue, Depends(get_enqueue)]
SessionDep = Annotated[Session, Depends(get_session)]


def current_team(session: SessionDep,
                 credentials: Annotated[HTTPAuthorizationCredentials | None,
                                        Depends(_bearer)]) -> Team:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("send the team's token as `Authorization: Bearer <token>`",
                           headers={"WWW-Authenticate": "Bearer"})
    team = team_for_token(session, credentials.credentials)
    if team is None:
        raise Unauthorized("unknown or revoked token", headers={"WWW-Authenticate": "Bearer"})
    # End the auth's transaction here, whether or not it wrote last_used_at (a flush inside
    # team_for_token leaves nothing dirty): the write must not ride on a rolled-back request,
    # and its lock (SQLite: the whole database's) must not be held while an upload streams.
    session.commit()
    return team


CurrentTeam = Annotated[Team, Depends(current_team)]


def organiser_team(team: CurrentTeam) -> Team:
    if not team.is_organiser:
        raise Forbidden("organisers only")
    return team


OrganiserTeam = Annotated[Team, Depends(organiser_team)]
