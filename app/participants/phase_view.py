"""What /me shows of the challenge's calendar: the phase open now, what is left of its limits,
the time to the end (or to the next opening), and the team's final selection per country.

Built from the same pieces the API answers with (`limits.quota_left`, `selection.
team_selections`, the request's `Moment`), so the page and `/api/v1/me` cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from app.phases.deps import Moment
from app.phases.limits import Quota
from app.phases.schedule import Phase
from app.phases.selection import team_selections

STAMP = "%Y-%m-%d %H:%M UTC"


def until(later: datetime, now: datetime) -> str:
    """A countdown as a person reads it: "3 d 04 h 05 min", "2 h 07 min"."""
    seconds = max(0, int((later - now).total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days} d {hours:02d} h {minutes:02d} min"
    return f"{hours} h {minutes:02d} min"


def _left(limit: int | None, used: int) -> int | None:
    return None if limit is None else max(0, limit - used)


@dataclass(frozen=True)
class PhaseBox:
    """The phase box of /me. `configured` False: no challenge file, the service as before (one
    open phase, no end, the daily quota)."""

    configured: bool
    open: bool
    name: str | None
    kinds: tuple[str, ...]
    closes: str | None
    closes_in: str | None
    left_today: int | None  # None: no daily limit (organisers, baselines)
    daily_limit: int | None
    resets_at: str
    resets_in: str
    left_in_phase: int | None  # None: the phase has no total limit
    total_limit: int | None
    end: str | None
    end_in: str | None
    ended: bool
    next_name: str | None
    next_opens: str | None
    next_opens_in: str | None
    feedback: str
    selection_limit: int
    locked: bool

    def as_json(self) -> dict[str, Any]:
        return {"configured": self.configured, "open": self.open, "phase": self.name,
                "kinds": list(self.kinds), "closes": self.closes, "closes_in": self.closes_in,
                "left_today": self.left_today, "daily_limit": self.daily_limit,
                "resets_at": self.resets_at, "resets_in": self.resets_in,
                "left_in_phase": self.left_in_phase, "total_limit": self.total_limit,
                "end": self.end, "end_in": self.end_in, "ended": self.ended,
                "next_phase": self.next_name, "next_opens": self.next_opens,
                "next_opens_in": self.next_opens_in, "feedback": self.feedback,
                "selection_limit": self.selection_limit, "locked": self.locked}


def phase_box(moment: Moment, quota: Quota) -> PhaseBox:
    schedule, now = moment.schedule, moment.now
    phase: Phase | None = schedule.current_phase(now)
    upcoming = schedule.next_phase(now)
    end = schedule.end
    closes = phase.closes if phase is not None else None
    return PhaseBox(
        configured=schedule.configured, open=phase is not None,
        name=phase.name if phase is not None and schedule.configured else None,
        kinds=phase.kinds if phase is not None else (),
        closes=closes.strftime(STAMP) if closes else None,
        closes_in=until(closes, now) if closes else None,
        left_today=_left(quota.daily_limit, quota.daily_used), daily_limit=quota.daily_limit,
        resets_at=quota.daily_resets_at.strftime(STAMP),
        resets_in=until(quota.daily_resets_at, now),
        left_in_phase=_left(quota.total_limit, quota.total_used),
        total_limit=quota.total_limit,
        end=end.strftime(STAMP) if end else None,
        end_in=until(end, now) if end and now < end else None,
        ended=schedule.ended(now),
        next_name=upcoming.name if upcoming is not None else None,
        next_opens=upcoming.opens.strftime(STAMP) if upcoming and upcoming.opens else None,
        next_opens_in=until(upcoming.opens, now) if upcoming and upcoming.opens else None,
        feedback=schedule.feedback, selection_limit=schedule.selection_limit,
        locked=moment.locked)


@dataclass(frozen=True)
class CountrySelection:
    country: str
    selected: list[tuple[int, str]] = field(default_factory=list)  # (submission id, mark)

    @property
    def count(self) -> int:
        return len(self.selected)


@dataclass(frozen=True)
class SelectionBox:
    limit: int
    locked: bool
    countries: list[CountrySelection]

    def as_json(self) -> dict[str, Any]:
        return {"limit": self.limit, "locked": self.locked,
                "countries": {c.country: {"selected": [sid for sid, _ in c.selected],
                                          "marks": {str(sid): mark for sid, mark in c.selected},
                                          "count": c.count}
                              for c in self.countries}}


def selection_box(session: Session, team_id: int, moment: Moment,
                  countries_entered: list[str]) -> SelectionBox:
    """The team's selections per country it entered, each out of the limit."""
    by_country: dict[str, CountrySelection] = {c: CountrySelection(c)
                                               for c in sorted(set(countries_entered))}
    for sid, country, auto in team_selections(session, team_id):
        by_country.setdefault(country, CountrySelection(country)).selected.append(
            (sid, "auto" if auto else "manual"))
    return SelectionBox(limit=moment.schedule.selection_limit, locked=moment.locked,
                        countries=[by_country[c] for c in sorted(by_country)])
