"""All SQL of the leaderboard: what changed, the visible scored entries, one submission."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app import challenge
from app.jobs.liveness import waiting_since
from app.models import AuditLog, LadderDecision, Score, Submission, Team, Verification
from evaluator.schema import SPLITS, TASKS, Country, Split, Task, parse_country

from .view import Entry, TaskResult

SCORED = "scored"
# A scored submission queued again for re-scoring keeps its earlier scores on the board until
# the new ones land; a failed one leaves the board.
ON_BOARD_STATES = (SCORED, "queued", "running")


def version_token(session: Session) -> tuple[Any, ...]:
    """A value that changes whenever anything the leaderboard shows may have changed.

    New scores (scoring, rescoring) raise max(score id); organiser actions (hide, disqualify,
    reveal) each write an audit row; a submission becoming scored changes the count. One round
    trip of index-only subqueries, cheap enough to run on every request.
    """
    row = session.execute(
        select(
            select(func.max(Score.id)).scalar_subquery(),
            select(func.max(AuditLog.id)).scalar_subquery(),
            select(func.count(Submission.id)).where(Submission.state == SCORED)
            .scalar_subquery(),
            select(func.count(Team.id)).scalar_subquery(),
            select(func.count(Verification.id)).where(Verification.verified.is_not(None))
            .scalar_subquery(),
            select(func.count()).select_from(LadderDecision).scalar_subquery(),
        )
    ).one()
    return (*tuple(row), challenge.is_revealed(session))


def _result(score: Score) -> TaskResult:
    return TaskResult(
        auc=score.auc, ci_low=score.ci_low, ci_high=score.ci_high, logloss=score.logloss,
        n_pos=score.n_pos, n_neg=score.n_neg, reason=score.reason,
    )


def visible_entries(session: Session, split: Split) -> list[Entry]:
    """Scored submissions that are neither hidden nor disqualified, with their scores on
    `split` under the newest scorer version each one has."""
    # Plain columns, not ORM objects: a busy board has tens of thousands of score rows.
    rows = session.execute(
        select(Submission.id, Submission.team_id, Team.name, Team.is_baseline,
               Submission.method, Submission.country, Submission.created_at,
               Score.scorer_version, Score.task, Score.auc, Score.ci_low, Score.ci_high,
               Score.logloss, Score.n_pos, Score.n_neg, Score.reason)
        .join(Team, Team.id == Submission.team_id)
        .join(Score, Score.submission_id == Submission.id)
        .where(Submission.state.in_(ON_BOARD_STATES), Submission.hidden.is_(False),
               Submission.disqualified.is_(False), Submission.withdrawn.is_(False),
               Score.split == split)
    ).all()
    heads: dict[int, tuple[Any, ...]] = {}
    versions: dict[int, dict[str, dict[str, TaskResult]]] = {}
    for (sid, team_id, team, is_baseline, method, country, created_at, version, task, auc,
         ci_low, ci_high, logloss, n_pos, n_neg, reason) in rows:
        if sid not in heads:
            heads[sid] = (team_id, team, bool(is_baseline), method, country, created_at)
            versions[sid] = {}
        versions[sid].setdefault(version, {})[task] = TaskResult(
            auc=auc, ci_low=ci_low, ci_high=ci_high, logloss=logloss, n_pos=n_pos,
            n_neg=n_neg, reason=reason)
    verified = verified_ids(session)
    entries: list[Entry] = []
    for sid, (team_id, team, is_baseline, method, country, created_at) in heads.items():
        by_version = versions[sid]
        shown = challenge.shown_version(by_version)
        assert shown is not None, "an entry has at least one score"
        entries.append(Entry(
            submission_id=sid, team_id=team_id, team=team, method=method,
            country=parse_country(country), is_baseline=is_baseline, submitted_at=created_at,
            scorer_version=shown, results=cast(dict[Task, TaskResult], by_version[shown]),
            verified=sid in verified,
        ))
    return entries


def verified_ids(session: Session, ids: Sequence[int] | None = None) -> set[int]:
    """Submissions whose latest finished verification matched the file's scores."""
    query = select(Verification.submission_id, Verification.verified).where(
        Verification.verified.is_not(None)).order_by(Verification.id)
    if ids is not None:
        query = query.where(Verification.submission_id.in_(list(ids)))
    latest: dict[int, bool] = {}
    for sid, verified in session.execute(query):
        latest[sid] = bool(verified)
    return {sid for sid, ok in latest.items() if ok}


def prediction_refs(session: Session, ids: Sequence[int]) -> dict[int, str | None]:
    """Where each submission's stored predictions are (their sha256), None when not stored."""
    found = session.execute(
        select(Submission.id, Submission.predictions_sha256).where(Submission.id.in_(list(ids)))
    )
    return {sid: sha for sid, sha in found}


@dataclass(frozen=True)
class SubmissionDetail:
    id: int
    team: str
    team_id: int
    method: str
    country: Country
    state: str
    reason: str | None
    is_baseline: bool
    hidden: bool
    disqualified: bool
    submitted_at: str
    sha256: str | None
    predictions_sha256: str | None
    scorer_version: str | None
    scores: dict[Split, dict[Task, TaskResult]]
    verified: bool = False
    attempts: int = 0
    description: str | None = None
    output_warning: str | None = None
    # Running with its worker's lease lapsed: "waiting for a worker since …".
    waiting_since: str | None = None


def submission_detail(session: Session, submission_id: int) -> SubmissionDetail | None:
    found = session.execute(
        select(Submission, Team).join(Team, Team.id == Submission.team_id)
        .where(Submission.id == submission_id)
    ).one_or_none()
    if found is None:
        return None
    submission, team = found
    scores = session.execute(
        select(Score).where(Score.submission_id == submission_id)
    ).scalars().all()
    version = challenge.shown_version(s.scorer_version for s in scores)
    by_split: dict[Split, dict[Task, TaskResult]] = {}
    for split in SPLITS:
        tasks = {s.task: _result(s) for s in scores
                 if s.scorer_version == version and s.split == split}
        if tasks:
            by_split[split] = {t: tasks[t] for t in TASKS if t in tasks}
    return SubmissionDetail(
        id=submission.id, team=team.name, team_id=team.id, method=submission.method,
        country=parse_country(submission.country), state=str(submission.state),
        reason=submission.reason, is_baseline=bool(team.is_baseline),
        hidden=bool(submission.hidden), disqualified=bool(submission.disqualified),
        submitted_at=submission.created_at.strftime("%Y-%m-%d %H:%M UTC"),
        sha256=submission.file_sha256 or submission.checkpoint_sha256,
        predictions_sha256=submission.predictions_sha256, scorer_version=version,
        scores=by_split, verified=submission.id in verified_ids(session, [submission.id]),
        attempts=int(submission.attempts or 0), description=submission.description,
        output_warning=submission.output_warning,
        waiting_since=_waiting_since(submission),
    )


def _waiting_since(submission: Submission) -> str | None:
    since = waiting_since(str(submission.state), submission.lease_expires_at)
    return since.strftime("%Y-%m-%d %H:%M:%S UTC") if since is not None else None


def submissions_by_id(session: Session, ids: Sequence[int]) -> dict[int, Submission]:
    found = session.execute(select(Submission).where(Submission.id.in_(list(ids)))).scalars()
    return {s.id: s for s in found}
