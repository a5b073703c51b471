"""The challenge file: its TOML format, its validation, and the questions asked of it.

Pure (no DB, no HTTP). A file is refused whole, every problem named with its field
(`phase[2].closes: before opens`), so a half-valid schedule never reaches the service.

    selection_limit = 2            # scored submissions per team and country that count at the end
    feedback = "ladder"            # "exact" | "ladder": what participants see of public scores
    ladder_level = 0.05            # the ladder's one-sided paired DeLong level
    reveal = "at_end"              # "at_end" | "manual"

    [[phase]]
    name = "development"
    opens = 2026-11-01T00:00:00Z   # RFC 3339, UTC (a TOML date-time, or a string)
    closes = 2026-12-01T00:00:00Z
    kinds = ["file", "checkpoint"]
    daily_limit = 5                # per team; absent: LB_DAILY_QUOTA
    total_limit = 100              # per team over the phase; absent: none
    post_challenge = false         # entries after the end: shown apart, never ranked finally

The end of the challenge is the `closes` of the last phase that is not post-challenge. Without a
file, the service is open for ever with the daily quota setting (`Schedule.open_ended()`).
"""

from __future__ import annotations

import itertools
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

KINDS = ("file", "checkpoint")
FEEDBACK = ("exact", "ladder")
REVEAL = ("at_end", "manual")
DEFAULT_SELECTION_LIMIT = 2
DEFAULT_LADDER_LEVEL = 0.05
MAX_FILE_CHARS = 16_000

Feedback = Literal["exact", "ladder"]
Reveal = Literal["at_end", "manual"]

TOP_FIELDS = ("selection_limit", "feedback", "ladder_level", "reveal", "phase")
PHASE_FIELDS = ("name", "opens", "closes", "kinds", "daily_limit", "total_limit",
                "post_challenge")


class ScheduleError(ValueError):
    """A refused challenge file: every (field, problem) found."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{where}: {what}" for where, what in problems))


@dataclass(frozen=True)
class Phase:
    name: str
    opens: datetime | None  # None only for the open-ended phase of "no file"
    closes: datetime | None
    kinds: tuple[str, ...] = KINDS
    daily_limit: int | None = None  # None: the LB_DAILY_QUOTA setting
    total_limit: int | None = None  # None: no total limit
    post_challenge: bool = False

    def is_open(self, now: datetime) -> bool:
        return ((self.opens is None or self.opens <= now)
                and (self.closes is None or now < self.closes))

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "opens": iso(self.opens), "closes": iso(self.closes),
                "kinds": list(self.kinds), "daily_limit": self.daily_limit,
                "total_limit": self.total_limit, "post_challenge": self.post_challenge}


OPEN_ENDED = Phase(name="open", opens=None, closes=None)


@dataclass(frozen=True)
class Schedule:
    phases: tuple[Phase, ...] = ()
    selection_limit: int = DEFAULT_SELECTION_LIMIT
    feedback: Feedback = "exact"
    ladder_level: float = DEFAULT_LADDER_LEVEL
    reveal: Reveal = "manual"
    source: str | None = field(default=None, compare=False)

    @classmethod
    def open_ended(cls) -> Schedule:
        """No challenge file: one phase open for ever, no end, exact feedback, manual reveal."""
        return cls()

    @property
    def configured(self) -> bool:
        return bool(self.phases)

    @property
    def end(self) -> datetime | None:
        closes = [p.closes for p in self.phases if not p.post_challenge and p.closes]
        return max(closes) if closes else None

    def ended(self, now: datetime) -> bool:
        end = self.end
        return end is not None and now >= end

    def current_phase(self, now: datetime) -> Phase | None:
        if not self.configured:
            return OPEN_ENDED
        return next((p for p in self.phases if p.is_open(now)), None)

    def next_phase(self, now: datetime) -> Phase | None:
        later = [p for p in self.phases if p.opens is not None and p.opens > now]
        return min(later, key=lambda p: p.opens or now) if later else None

    def is_post_challenge(self, created_at: datetime) -> bool:
        end = self.end
        return end is not None and created_at >= end

    def ladder_active(self, now: datetime) -> bool:
        return self.feedback == "ladder" and not self.ended(now)

    def rounds_for_participants(self, now: datetime) -> bool:
        """Public figures shown to participants are rounded during a scheduled challenge."""
        return self.configured and not self.ended(now)

    def as_json(self, now: datetime) -> dict[str, Any]:
        current = self.current_phase(now)
        upcoming = self.next_phase(now)
        return {
            "configured": self.configured,
            "now": now.isoformat(),
            "phases": [p.as_json() for p in self.phases],
            "current_phase": current.as_json() if current is not None else None,
            "next_phase": upcoming.as_json() if upcoming is not None else None,
            "end": iso(self.end),
            "ended": self.ended(now),
            "rules": {"selection_limit": self.selection_limit, "feedback": self.feedback,
                      "ladder_level": self.ladder_level, "reveal": self.reveal,
                      "rounding": "public AUCs and intervals shown to participants are rounded "
                                  "to 4 decimals until the end" if self.configured else None},
        }


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def _instant(value: Any, where: str, problems: list[tuple[str, str]]) -> datetime | None:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            problems.append((where, f"not an RFC 3339 date-time: {value[:40]!r}"))
            return None
    if not isinstance(value, datetime):
        problems.append((where, "expected an RFC 3339 date-time such as 2026-12-01T00:00:00Z"))
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        problems.append((where, "needs a UTC offset (end it with Z)"))
        return None
    if value.utcoffset() != timedelta(0):
        problems.append((where, "must be in UTC (offset Z or +00:00)"))
        return None
    return value.astimezone(UTC)


def _limit(value: Any, where: str, problems: list[tuple[str, str]]) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        problems.append((where, f"expected a whole number, got {value!r}"))
        return None
    if value < 0:
        problems.append((where, f"a limit cannot be negative ({value})"))
        return None
    return value


def _phase(index: int, table: Any, problems: list[tuple[str, str]]) -> Phase | None:
    at = f"phase[{index}]"
    if not isinstance(table, dict):
        problems.append((at, "expected a [[phase]] table"))
        return None
    for key in table:
        if key not in PHASE_FIELDS:
            problems.append((f"{at}.{key}", f"unknown field; expected {', '.join(PHASE_FIELDS)}"))
    before = len(problems)
    name = table.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 64:
        problems.append((f"{at}.name", "a name of 1 to 64 characters is required"))
    for key in ("opens", "closes"):
        if key not in table:
            problems.append((f"{at}.{key}", "required"))
    opens = _instant(table["opens"], f"{at}.opens", problems) if "opens" in table else None
    closes = _instant(table["closes"], f"{at}.closes", problems) if "closes" in table else None
    if opens is not None and closes is not None and closes <= opens:
        problems.append((f"{at}.closes", f"{iso(closes)} is not after opens {iso(opens)}"))
    kinds_value = table.get("kinds", list(KINDS))
    kinds: tuple[str, ...] = ()
    if not isinstance(kinds_value, list) or not kinds_value:
        problems.append((f"{at}.kinds", f"a non-empty list of {', '.join(KINDS)}"))
    else:
        for kind in kinds_value:
            if kind not in KINDS:
                problems.append((f"{at}.kinds", f"unknown kind {kind!r}; expected "
                                                f"{' or '.join(KINDS)}"))
        kinds = tuple(k for k in KINDS if k in kinds_value)
    daily = _limit(table.get("daily_limit"), f"{at}.daily_limit", problems)
    total = _limit(table.get("total_limit"), f"{at}.total_limit", problems)
    post = table.get("post_challenge", False)
    if not isinstance(post, bool):
        problems.append((f"{at}.post_challenge", "expected true or false"))
    if len(problems) > before:
        return None
    assert isinstance(name, str)
    return Phase(name=name.strip(), opens=opens, closes=closes, kinds=kinds, daily_limit=daily,
                 total_limit=total, post_challenge=bool(post))


def parse_schedule(text: str) -> Schedule:
    """The schedule of a challenge file's text, or ScheduleError listing every problem."""
    if len(text) > MAX_FILE_CHARS:
        raise ScheduleError([("file", f"over {MAX_FILE_CHARS} characters")])
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScheduleError([("file", f"not valid TOML: {exc}")]) from None
    problems: list[tuple[str, str]] = []
    for key in data:
        if key not in TOP_FIELDS:
            problems.append((key, f"unknown field; expected {', '.join(TOP_FIELDS)}"))
    selection_limit = data.get("selection_limit", DEFAULT_SELECTION_LIMIT)
    if isinstance(selection_limit, bool) or not isinstance(selection_limit, int):
        problems.append(("selection_limit", f"expected a whole number, got {selection_limit!r}"))
    elif selection_limit < 1:
        problems.append(("selection_limit", f"at least 1 (got {selection_limit})"))
    feedback = data.get("feedback", "exact")
    if feedback not in FEEDBACK:
        problems.append(("feedback", f"{feedback!r}: expected \"exact\" or \"ladder\""))
    reveal = data.get("reveal", "at_end")
    if reveal not in REVEAL:
        problems.append(("reveal", f"{reveal!r}: expected \"at_end\" or \"manual\""))
    level = data.get("ladder_level", DEFAULT_LADDER_LEVEL)
    if isinstance(level, bool) or not isinstance(level, int | float) or not 0 < level < 1:
        problems.append(("ladder_level", f"a number between 0 and 1, got {level!r}"))
    tables = data.get("phase")
    phases: list[Phase] = []
    if not isinstance(tables, list) or not tables:
        problems.append(("phase", "at least one [[phase]] table is required"))
    else:
        for index, table in enumerate(tables):
            found = _phase(index, table, problems)
            if found is not None:
                phases.append(found)
        _check_phases(phases, [t.get("name") if isinstance(t, dict) else None
                               for t in tables], problems)
    if problems:
        raise ScheduleError(problems)
    return Schedule(phases=tuple(phases), selection_limit=int(selection_limit),
                    feedback=feedback, ladder_level=float(level), reveal=reveal, source=text)


def _check_phases(phases: list[Phase], names: list[Any],
                  problems: list[tuple[str, str]]) -> None:
    seen: set[str] = set()
    for index, name in enumerate(names):
        if isinstance(name, str) and name.strip() in seen:
            problems.append((f"phase[{index}].name", f"{name!r} is used twice"))
        if isinstance(name, str):
            seen.add(name.strip())
    ordered = sorted(phases, key=lambda p: p.opens or datetime.min.replace(tzinfo=UTC))
    for earlier, later in itertools.pairwise(ordered):
        assert earlier.closes is not None and later.opens is not None
        if later.opens < earlier.closes:
            problems.append((f"phase[{phases.index(later)}].opens",
                             f"phase {later.name!r} overlaps phase {earlier.name!r} (which "
                             f"closes {iso(earlier.closes)})"))
    if phases and all(p.post_challenge for p in phases):
        problems.append(("phase", "at least one phase must not be post_challenge (its end is "
                                  "the challenge's end)"))
        return
    end = Schedule(phases=tuple(phases)).end
    for index, phase in enumerate(phases):
        if phase.post_challenge and end is not None and phase.opens is not None \
                and phase.opens < end:
            problems.append((f"phase[{index}].opens",
                             f"post-challenge phase {phase.name!r} opens before the challenge "
                             f"ends ({iso(end)})"))
