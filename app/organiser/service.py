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
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit import record as audit_record
from app.challenge import set_revealed as set_revealed
from app.challenge import shown_version
from app.errors import Invalid, NotFound
from app.jobs.context import Enqueue, enqueue_or_leave_to_reaper
from app.models import ApiToken, AuditLog, Rescore, Score, Submission, Team, Verification
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


# ------------------------------------------------------------------------ the console's reads


@dataclass(frozen=True)
class ConsoleSubmission:
    submission: Submission
    team: str
    version: str | None
    # split → task → (auc, ci_low, ci_high); every split, organisers see them all
    scores: dict[str, dict[str, tuple[float | None, float | None, float | None]]]
    verification: Verification | None


def console_submissions(session: Session, limit: int) -> list[ConsoleSubmission]:
    """The newest submissions with their scores on every split and their latest
    verification."""
    rows = session.execute(
        select(Submission, Team.name).join(Team, Team.id == Submission.team_id)
        .order_by(Submission.id.desc()).limit(limit)
    ).all()
    ids = [s.id for s, _name in rows]
    by_sub: dict[int, list[Score]] = {}
    if ids:
        for score in session.execute(select(Score).where(Score.submission_id.in_(ids))
                                     .order_by(Score.id)).scalars():
            by_sub.setdefault(score.submission_id, []).append(score)
    latest: dict[int, Verification] = {}
    if ids:
        for ver in session.execute(select(Verification).where(
                Verification.submission_id.in_(ids)).order_by(Verification.id)).scalars():
            latest[ver.submission_id] = ver  # ordered by id: the last one wins
    out = []
    for sub, name in rows:
        scores = by_sub.get(sub.id, [])
        version = shown_version(s.scorer_version for s in scores)
        table: dict[str, dict[str, tuple[float | None, float | None, float | None]]] = {}
        for s in scores:
            if s.scorer_version == version:
                table.setdefault(s.split, {})[s.task] = (s.auc, s.ci_low, s.ci_high)
        out.append(ConsoleSubmission(sub, name, version, table, latest.get(sub.id)))
    return out


@dataclass(frozen=True)
class TeamTokens:
    team: Team
    tokens: list[ApiToken]


def teams_with_tokens(session: Session) -> list[TeamTokens]:
    grouped: dict[int, list[ApiToken]] = {}
    for token in session.execute(select(ApiToken).order_by(ApiToken.id)).scalars():
        grouped.setdefault(token.team_id, []).append(token)
    return [TeamTokens(team, grouped.get(team.id, []))
            for team in session.execute(select(Team).order_by(Team.id)).scalars()]


@dataclass(frozen=True)
class RunningJob:
    kind: str
    row_id: int
    submission_id: int
    worker: str | None
    lease_expires_at: datetime | None
    last_heartbeat: datetime | None


def running_jobs(session: Session, lease_seconds: int) -> list[RunningJob]:
    """Jobs a worker holds now, with the worker's last heartbeat: a lease is renewed to
    `lease_seconds` ahead at each heartbeat, so the renewal happened that long before it
    expires."""
    lease = timedelta(seconds=lease_seconds)
    jobs: list[RunningJob] = []
    rows: list[tuple[str, Submission | Verification | Rescore]] = []
    rows += [("score", r) for r in session.execute(
        select(Submission).where(Submission.state == "running")).scalars()]
    rows += [("verify", r) for r in session.execute(
        select(Verification).where(Verification.state == "running")).scalars()]
    rows += [("rescore", r) for r in session.execute(
        select(Rescore).where(Rescore.state == "running")).scalars()]
    for kind, row in rows:
        expires = row.lease_expires_at
        submission_id = row.id if isinstance(row, Submission) else row.submission_id
        jobs.append(RunningJob(kind, row.id, submission_id, row.lease_owner, expires,
                               expires - lease if expires is not None else None))
    return jobs
