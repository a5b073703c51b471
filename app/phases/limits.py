"""What an upload may do now: the open phase, the kinds it takes, its daily and total limits.

Refused and failed files cost nothing: only submissions that are not `failed` count, and the
counts are taken under the team's lock in the upload's own transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.config import Settings
from app.errors import AppError, Invalid, QuotaExceeded
from app.models import Submission, Team

from .schedule import Phase, Schedule, iso


class ChallengeClosed(AppError):
    status, code = 403, "challenge_closed"


def start_of_day(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def exempt(team: Team) -> bool:
    # Organisers enter baselines and test runs; they are not competing for the test set.
    return bool(team.is_organiser or team.is_baseline)


def open_phase(schedule: Schedule, now: datetime) -> Phase:
    """The phase taking uploads now, or 403 `challenge_closed` naming the next opening or
    the end."""
    phase = schedule.current_phase(now)
    if phase is not None:
        return phase
    upcoming = schedule.next_phase(now)
    detail: dict[str, Any] = {"now": iso(now), "end": iso(schedule.end)}
    if upcoming is not None:
        detail["message"] = (f"no phase takes uploads now; phase {upcoming.name!r} opens at "
                             f"{iso(upcoming.opens)}")
        detail["next_phase"] = upcoming.name
        detail["opens"] = iso(upcoming.opens)
    else:
        detail["message"] = f"the challenge ended at {iso(schedule.end)}; no phase opens again"
    raise ChallengeClosed(detail)


def check_kinds(phase: Phase, kinds: set[str]) -> None:
    refused = sorted(kinds - set(phase.kinds))
    if refused:
        raise Invalid({"message": f"phase {phase.name!r} takes {' and '.join(phase.kinds)} "
                                  f"submissions, not {' or '.join(refused)}",
                       "phase": phase.name, "accepted": list(phase.kinds), "refused": refused},
                      code="kind_not_accepted")


def _count(session: Session, team_id: int, since: datetime | None,
           until: datetime | None) -> int:
    query = select(func.count()).select_from(Submission).where(
        Submission.team_id == team_id, Submission.state != "failed")
    if since is not None:
        query = query.where(Submission.created_at >= since)
    if until is not None:
        query = query.where(Submission.created_at < until)
    return int(session.execute(query).scalar_one())


@dataclass(frozen=True)
class Quota:
    phase: str | None
    daily_limit: int | None  # None: no daily limit for this team
    daily_used: int
    daily_resets_at: datetime
    total_limit: int | None
    total_used: int
    total_resets_at: datetime | None  # the next phase's opening; None: never in this phase

    def as_json(self) -> dict[str, Any]:
        return {"phase": self.phase, "limit": self.daily_limit, "used": self.daily_used,
                "resets_at": self.daily_resets_at.isoformat(),
                "total_limit": self.total_limit, "total_used": self.total_used,
                "total_resets_at": iso(self.total_resets_at)}


def quota_left(session: Session, settings: Settings, schedule: Schedule, team: Team,
               now: datetime) -> Quota:
    """The team's use of the phase open now (or of none: both limits read 0 left)."""
    phase = schedule.current_phase(now)
    day = start_of_day(now)
    resets = day + timedelta(days=1)
    if phase is None:
        return Quota(phase=None, daily_limit=0, daily_used=0, daily_resets_at=resets,
                     total_limit=0, total_used=0, total_resets_at=None)
    since = max(day, phase.opens) if phase.opens is not None else day
    daily_used = _count(session, team.id, since, None)
    total_used = _count(session, team.id, phase.opens, phase.closes) \
        if phase.total_limit is not None else 0
    daily = phase.daily_limit if phase.daily_limit is not None else settings.daily_quota
    if exempt(team):
        return Quota(phase=phase.name, daily_limit=None, daily_used=daily_used,
                     daily_resets_at=resets, total_limit=None, total_used=total_used,
                     total_resets_at=None)
    if phase.closes is not None and phase.closes < resets:
        # The phase ends before midnight: what resets then is the next phase's own count.
        upcoming = schedule.next_phase(now)
        resets = upcoming.opens if upcoming is not None and upcoming.opens else phase.closes
    upcoming = schedule.next_phase(now)
    return Quota(phase=phase.name, daily_limit=daily, daily_used=daily_used,
                 daily_resets_at=resets, total_limit=phase.total_limit, total_used=total_used,
                 total_resets_at=upcoming.opens if upcoming is not None else None)


def check_limits(session: Session, settings: Settings, schedule: Schedule, team: Team,
                 now: datetime) -> None:
    """429 when the phase's daily or total limit is used up, saying what resets when. Call
    under the team's lock."""
    quota = quota_left(session, settings, schedule, team, now)
    if quota.total_limit is not None and quota.total_used >= quota.total_limit:
        resets = quota.total_resets_at
        detail = {"message": f"the total limit of {quota.total_limit} submissions of phase "
                             f"{quota.phase!r} is used up; "
                             + (f"phase limits start again when the next phase opens at "
                                f"{iso(resets)}" if resets else "it does not reset"),
                  "limit": quota.total_limit, "used": quota.total_used, "which": "total",
                  "phase": quota.phase, "resets_at": iso(resets)}
        headers = {"Retry-After": str(_seconds(resets, now))} if resets else {}
        raise QuotaExceeded(detail, headers=headers)
    if quota.daily_limit is not None and quota.daily_used >= quota.daily_limit:
        resets = quota.daily_resets_at
        raise QuotaExceeded(
            {"message": f"the daily quota of {quota.daily_limit} submissions is used up "
                        f"(phase {quota.phase!r}); it resets at {iso(resets)}",
             "limit": quota.daily_limit, "used": quota.daily_used, "which": "daily",
             "phase": quota.phase, "resets_at": resets.isoformat()},
            headers={"Retry-After": str(_seconds(resets, now))})


def _seconds(at: datetime, now: datetime) -> int:
    return max(1, int((at - now).total_seconds()) + 1)
