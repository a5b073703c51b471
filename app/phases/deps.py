"""The request's moment: the clock's now, the stored schedule, and the lock (taken here the
first time a request arrives after the end)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from app.deps import SessionDep

from . import store
from .clock import clock_of
from .schedule import Schedule
from .selection import ensure_locked


@dataclass(frozen=True)
class Moment:
    now: datetime
    schedule: Schedule
    locked: bool

    @property
    def ended(self) -> bool:
        return self.schedule.ended(self.now)


def moment_of(session: Session, now: datetime) -> Moment:
    schedule = store.load(session)
    locked = ensure_locked(session, schedule, now)
    # End the read: an upload streams after this, and must not hold a transaction open.
    session.commit()
    return Moment(now=now, schedule=schedule, locked=locked)


def current_moment(request: Request, session: SessionDep) -> Moment:
    return moment_of(session, clock_of(request).now())


ChallengeNow = Annotated[Moment, Depends(current_moment)]
