"""Organiser actions. Each changes the DB and writes an audit row in the same transaction.

The callers (API, pages, CLI) own the transaction: these functions flush, never commit, so an
action and its audit row are stored together or not at all. Enqueueing re-scoring happens after
the commit: `plan_rescore` records each request as a row, so the reaper finishes it even when
that enqueue is lost.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit import record as audit_record
from app.challenge import set_revealed as set_revealed
from app.errors import Invalid, NotFound
from app.jobs.context import Enqueue, enqueue_or_leave_to_reaper
from app.models import AuditLog, Rescore, Submission, Team
from evaluator import scoring

MAX_REASON = 500


def _clean_reason(reason: str | None) -> str | None:
    if reason is None:
        return None
    # Control characters (NUL above all, which PostgreSQL text and JSON refuse) become spaces.
    printable = "".join(" " if unicodedata.category(c) in ("Cc", "Cs") else c for c in reason)
    text = " ".join(printable.split())
    if len(text) > MAX_REASON:
        raise Invalid(f"reason has {len(text)} characters, at most {MAX_REASON} allowed",
                      code="reason_too_long")
    return text or None


def _submission(session: Session, submission_id: int) -> Submission:
    submission = session.get(Submission, submission_id)
    if submission is None:
        raise NotFound(f"no submission {submission_id}")
    return submission


def set_hidden(session: Session, actor: Team | None, submission_id: int, hidden: bool,
               reason: str | None = None) -> Submission:
    """Hide a submission from the leaderboard (or show it again)."""
    submission = _submission(session, submission_id)
    note = _clean_reason(reason)
    previous = bool(submission.hidden)
    submission.hidden = hidden
    audit_record(session, actor, "hide" if hidden else "unhide", "submission", submission_id,
                 {"reason": note, "was_hidden": previous})
    session.flush()
    return submission


def set_disqualified(session: Session, actor: Team | None, submission_id: int,
                     disqualified: bool, reason: str | None = None) -> Submission:
    """Disqualify a submission (off the leaderboard, marked on its page), or undo it."""
    submission = _submission(session, submission_id)
    note = _clean_reason(reason)
    if disqualified and note is None:
        raise Invalid("say why the submission is disqualified", code="reason_required")
    previous = bool(submission.disqualified)
    submission.disqualified = disqualified
    audit_record(session, actor, "disqualify" if disqualified else "requalify", "submission",
                 submission_id, {"reason": note, "was_disqualified": previous})
    session.flush()
    return submission


@dataclass(frozen=True)
class RescorePlan:
    scorer_version: str
    submission_ids: list[int]
    rescore_ids: list[int]


def plan_rescore(session: Session, actor: Team | None,
                 submission_ids: Sequence[int] | None = None) -> RescorePlan:
    """Choose the submissions to score again under the installed scorer version.

    Old scores stay (they are keyed by scorer version); the leaderboard shows each submission's
    newest version. Without ids, every scored submission is chosen. Each is recorded as a
    queued rescore row; the caller commits, then enqueues them (`enqueue_all`).
    """
    query = select(Submission.id).where(Submission.state == "scored")
    if submission_ids is not None:
        wanted = sorted(set(submission_ids))
        found = set(session.execute(
            select(Submission.id).where(Submission.id.in_(wanted))).scalars())
        missing = [i for i in wanted if i not in found]
        if missing:
            raise NotFound(f"no submission {missing[0]}"
                           + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
        query = select(Submission.id).where(Submission.id.in_(wanted))
    ids = sorted(session.execute(query).scalars())
    requests = [Rescore(submission_id=i, scorer_version=scoring.SCORER_VERSION, state="queued",
                        attempts=0) for i in ids]
    session.add_all(requests)
    audit_record(session, actor, "rescore", "challenge", None,
                 {"scorer_version": scoring.SCORER_VERSION, "submissions": len(ids),
                  "ids": ids[:1000]})
    session.flush()
    return RescorePlan(scorer_version=scoring.SCORER_VERSION, submission_ids=ids,
                       rescore_ids=[r.id for r in requests])


def audit_entries(session: Session, limit: int = 200) -> list[dict[str, Any]]:
    rows = session.execute(
        select(AuditLog, Team.name).outerjoin(Team, Team.id == AuditLog.actor_team_id)
        .order_by(AuditLog.id.desc()).limit(limit)
    ).all()
    return [
        {"id": log.id, "at": log.created_at.isoformat(), "actor": name,
         "action": log.action, "target_type": log.target_type, "target_id": log.target_id,
         "detail": log.detail}
        for log, name in rows
    ]


def enqueue_all(plan: RescorePlan, enqueue: Enqueue) -> None:
    """Hand the planned rescores to the queue (after the caller's commit)."""
    for rescore_id in plan.rescore_ids:
        enqueue_or_leave_to_reaper(enqueue, "rescore", rescore_id)
