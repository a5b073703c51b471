"""Organiser actions. Each changes the DB and writes an audit row in the same transaction.

The callers (API, pages, CLI) own the transaction: these functions flush, never commit, so an
action and its audit row are stored together or not at all. Enqueueing re-scoring happens after
the commit (`rescore` returns the ids for the caller to enqueue).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit import record as audit_record
from app.errors import AppError
from app.models import AuditLog, ChallengeState, Submission, Team
from evaluator.scoring import SCORER_VERSION

MAX_REASON = 500


class OrganiserError(AppError):
    """An action that cannot be done; `status` is the HTTP status that says why."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail, code=code, status=status)
        self.detail: str = detail


def _clean_reason(reason: str | None) -> str | None:
    if reason is None:
        return None
    # Control characters (NUL above all, which PostgreSQL text and JSON refuse) become spaces.
    printable = "".join(" " if unicodedata.category(c) in ("Cc", "Cs") else c for c in reason)
    text = " ".join(printable.split())
    if len(text) > MAX_REASON:
        raise OrganiserError(422, "reason_too_long",
                             f"reason has {len(text)} characters, at most {MAX_REASON} allowed")
    return text or None


def _submission(session: Session, submission_id: int) -> Submission:
    submission = session.get(Submission, submission_id)
    if submission is None:
        raise OrganiserError(404, "not_found", f"no submission {submission_id}")
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
        raise OrganiserError(422, "reason_required", "say why the submission is disqualified")
    previous = bool(submission.disqualified)
    submission.disqualified = disqualified
    audit_record(session, actor, "disqualify" if disqualified else "requalify", "submission",
                 submission_id, {"reason": note, "was_disqualified": previous})
    session.flush()
    return submission


def challenge_state(session: Session) -> ChallengeState:
    state = session.execute(select(ChallengeState).limit(1)).scalar_one_or_none()
    if state is None:
        state = ChallengeState(revealed=False, revealed_at=None)
        session.add(state)
        session.flush()
    return state


def set_revealed(session: Session, actor: Team | None, revealed: bool) -> ChallengeState:
    """Reveal the private split (the leaderboard switches to it), or take it back."""
    state = challenge_state(session)
    previous = bool(state.revealed)
    state.revealed = revealed
    state.revealed_at = datetime.now(UTC) if revealed else None
    audit_record(session, actor, "reveal" if revealed else "unreveal", "challenge", None,
                 {"was_revealed": previous})
    session.flush()
    return state


@dataclass(frozen=True)
class RescorePlan:
    scorer_version: str
    submission_ids: list[int]


def plan_rescore(session: Session, actor: Team | None,
                 submission_ids: Sequence[int] | None = None) -> RescorePlan:
    """Choose the submissions to score again under the installed scorer version.

    Old scores stay (they are keyed by scorer version); the leaderboard shows each submission's
    newest version. Without ids, every scored submission is chosen. The caller commits, then
    enqueues the returned ids.
    """
    query = select(Submission.id).where(Submission.state == "scored")
    if submission_ids is not None:
        wanted = sorted(set(submission_ids))
        found = set(session.execute(
            select(Submission.id).where(Submission.id.in_(wanted))).scalars())
        missing = [i for i in wanted if i not in found]
        if missing:
            raise OrganiserError(404, "not_found", f"no submission {missing[0]}"
                                 + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
        query = select(Submission.id).where(Submission.id.in_(wanted))
    ids = sorted(session.execute(query).scalars())
    audit_record(session, actor, "rescore", "challenge", None,
                 {"scorer_version": SCORER_VERSION, "submissions": len(ids),
                  "ids": ids[:1000]})
    session.flush()
    return RescorePlan(scorer_version=SCORER_VERSION, submission_ids=ids)


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


def enqueue_all(plan: RescorePlan) -> None:
    """Hand the planned submissions to the queue (after the caller's commit)."""
    from app.queue import enqueue_scoring

    for submission_id in plan.submission_ids:
        enqueue_scoring(submission_id)
