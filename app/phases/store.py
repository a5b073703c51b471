"""The schedule as every process sees it: stored in the challenge state's row, so the API's
workers, the organiser page and the CLI agree; every change audit-logged."""

from __future__ import annotations

import hashlib
import logging
import threading
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from app import challenge
from app.audit import record as audit_record
from app.models import Team

from .schedule import Schedule, ScheduleError, parse_schedule

log = logging.getLogger(__name__)

_parsed: dict[str, Schedule] = {}
_parsed_lock = threading.Lock()


def _parse_cached(text: str) -> Schedule:
    with _parsed_lock:
        found = _parsed.get(text)
    if found is None:
        found = parse_schedule(text)
        with _parsed_lock:
            if len(_parsed) > 32:
                _parsed.clear()
            _parsed[text] = found
    return found


def load(session: Session) -> Schedule:
    """The stored schedule; open-ended when none was set."""
    text = challenge.state(session).schedule_toml
    if not text:
        return Schedule.open_ended()
    try:
        return _parse_cached(text)
    except ScheduleError:
        # Stored only after validation; a rule tightened since must not take the service down.
        log.exception("the stored challenge file no longer validates; treated as none")
        return Schedule.open_ended()


def set_schedule(session: Session, actor: Team | None, text: str | None,
                 source: str) -> Schedule:
    """Validate and store a challenge file's text (None: back to no schedule). Flushes; the
    caller commits."""
    schedule = parse_schedule(text) if text is not None else Schedule.open_ended()
    state = challenge.state(session, for_update=True)
    previous = state.schedule_toml
    state.schedule_toml = text
    audit_record(session, actor, "challenge_set" if text is not None else "challenge_clear",
                 "challenge", None,
                 {"source": source[:200],
                  "sha256": hashlib.sha256(text.encode()).hexdigest() if text else None,
                  "previous_sha256": hashlib.sha256(previous.encode()).hexdigest()
                  if previous else None,
                  "end": schedule.end.isoformat() if schedule.end else None})
    session.flush()
    return schedule


def load_file_at_start(path: Path, factory: sessionmaker[Session]) -> Schedule:
    """LB_CHALLENGE_FILE: validated (a bad file stops the start with its problems) and stored
    when it differs from the stored one."""
    text = path.read_text(encoding="utf-8")
    schedule = parse_schedule(text)
    with factory() as session:
        if challenge.state(session).schedule_toml != text:
            set_schedule(session, None, text, f"LB_CHALLENGE_FILE {path}")
            session.commit()
    return schedule
