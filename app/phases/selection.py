"""Final selection, the lock at the end, and withdrawal.

A team selects up to `selection_limit` scored submissions per country. At the end the selections
lock: a team with fewer selected than the limit in a country gets its best public entries there
(marked `auto`), and the final board is frozen as `FinalEntry` rows (per team and country, the
selected entry with the best private score, with its figures at that moment). A later rescore
never changes those rows; the final board shows it apart.

The lock happens the first time anything asks after the end (`ensure_locked`), in one
transaction under the challenge row's lock, so two processes cannot lock twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app import challenge
from app.audit import record as audit_record
from app.errors import Conflict, NotFound
from app.models import FinalEntry, Score, Selection, Submission, Team
from evaluator.schema import TASKS

from .schedule import Schedule, iso

ON_BOARD = ("scored", "queued", "running")


@dataclass(frozen=True)
class Candidate:
    """A submission that can count for the final ranking, with its shown-version figures."""

    submission_id: int
    team_id: int
    country: str
    method: str
    scorer_version: str
    public: dict[str, dict[str, Any]]
    private: dict[str, dict[str, Any]]

    @staticmethod
    def mean(scores: dict[str, dict[str, Any]]) -> float | None:
        values = [s["auc"] for s in scores.values() if s.get("auc") is not None]
        return sum(values) / len(values) if values else None


def _lock_team(session: Session, team_id: int) -> None:
    # A no-op write takes the row lock (PostgreSQL) or the write lock (SQLite): a team's
    # selections are counted and written one request at a time.
    session.execute(update(Team).where(Team.id == team_id).values(name=Team.name)
                    .execution_options(synchronize_session=False))


def selections_of(session: Session, team_id: int) -> dict[int, bool]:
    """submission id → auto, for the team's selections."""
    rows = session.execute(select(Selection.submission_id, Selection.auto)
                           .where(Selection.team_id == team_id))
    return {sid: bool(auto) for sid, auto in rows}


def team_selections(session: Session, team_id: int) -> list[tuple[int, str, bool]]:
    """(submission id, country, auto) of the team's selections, by country then id."""
    rows = session.execute(select(Selection.submission_id, Selection.country, Selection.auto)
                           .where(Selection.team_id == team_id)
                           .order_by(Selection.country, Selection.submission_id))
    return [(sid, country, bool(auto)) for sid, country, auto in rows]


def selection_marks(session: Session, ids: Sequence[int]) -> dict[int, str]:
    """submission id → "manual" | "auto", for those selected among `ids`."""
    if not ids:
        return {}
    rows = session.execute(select(Selection.submission_id, Selection.auto)
                           .where(Selection.submission_id.in_(list(ids))))
    return {sid: "auto" if auto else "manual" for sid, auto in rows}


def _own(session: Session, team: Team, submission_id: int) -> Submission:
    sub = session.get(Submission, submission_id)
    # Another team's submission is "not found", organisers' included: selections are a team's.
    if sub is None or sub.team_id != team.id:
        raise NotFound(f"no submission {submission_id}")
    return sub


def _refuse_if_locked(session: Session, schedule: Schedule, now: datetime) -> None:
    state = challenge.state(session)
    if state.locked_at is not None or schedule.ended(now):
        raise Conflict({"message": f"selections locked at the end of the challenge "
                                   f"({iso(schedule.end)}); they cannot change now",
                        "which": "locked", "end": iso(schedule.end)},
                       code="selection_locked")


def select_submission(session: Session, team: Team, submission_id: int, schedule: Schedule,
                      now: datetime) -> Selection:
    """Count a submission for the final ranking. 409 past the limit, for a failed, unscored,
    withdrawn or post-challenge one, or after the lock; 404 for another team's."""
    sub = _own(session, team, submission_id)
    _refuse_if_locked(session, schedule, now)
    _lock_team(session, team.id)
    existing = session.execute(select(Selection).where(
        Selection.submission_id == sub.id)).scalar_one_or_none()
    if existing is not None:
        return existing
    if sub.state == "failed":
        raise Conflict({"message": f"submission {sub.id} failed; only scored submissions can "
                                   "count", "which": "failed"}, code="submission_failed")
    if sub.state != "scored":
        raise Conflict({"message": f"submission {sub.id} is {sub.state}; select it once it is "
                                   "scored", "which": "not_scored"}, code="not_scored")
    if sub.withdrawn:
        raise Conflict({"message": f"submission {sub.id} was withdrawn", "which": "withdrawn"},
                       code="withdrawn")
    if sub.disqualified:
        raise Conflict({"message": f"submission {sub.id} is disqualified",
                        "which": "disqualified"}, code="disqualified")
    if schedule.is_post_challenge(sub.created_at):
        raise Conflict({"message": f"submission {sub.id} came after the end; post-challenge "
                                   "entries never count", "which": "post_challenge"},
                       code="post_challenge")
    chosen = session.execute(select(Selection.submission_id).where(
        Selection.team_id == team.id, Selection.country == sub.country)
        .order_by(Selection.submission_id)).scalars().all()
    if len(chosen) >= schedule.selection_limit:
        raise Conflict({"message": f"{len(chosen)} submissions for {sub.country} are selected "
                                   f"already (the limit is {schedule.selection_limit}): "
                                   f"unselect one of {', '.join(map(str, chosen))} first",
                        "which": "limit", "limit": schedule.selection_limit,
                        "selected": list(chosen)},
                       code="selection_limit")
    selection = Selection(submission_id=sub.id, team_id=team.id, country=sub.country,
                          auto=False, created_at=now)
    session.add(selection)
    audit_record(session, team, "select", "submission", sub.id, {"country": sub.country})
    session.flush()
    return selection


def unselect_submission(session: Session, team: Team, submission_id: int, schedule: Schedule,
                        now: datetime) -> bool:
    """Stop counting a submission; False when it was not selected."""
    sub = _own(session, team, submission_id)
    _refuse_if_locked(session, schedule, now)
    removed = session.execute(delete(Selection).where(Selection.submission_id == sub.id))
    if removed.rowcount:  # type: ignore[attr-defined]
        audit_record(session, team, "unselect", "submission", sub.id, {"country": sub.country})
    session.flush()
    return bool(removed.rowcount)  # type: ignore[attr-defined]


def withdraw_submission(session: Session, team: Team, submission_id: int) -> Submission:
    """Take one's own entry off the boards (organisers still see it). An entry already on the
    frozen final board stays there: a published rank does not change."""
    sub = _own(session, team, submission_id)
    if sub.withdrawn:
        return sub
    frozen = session.execute(select(FinalEntry.id).where(
        FinalEntry.submission_id == sub.id)).first()
    if frozen is not None:
        raise Conflict({"message": f"submission {sub.id} is on the final board, frozen at the "
                                   "end; it cannot be withdrawn now", "which": "final"},
                       code="final_locked")
    sub.withdrawn = True
    session.execute(delete(Selection).where(Selection.submission_id == sub.id))
    audit_record(session, team, "withdraw", "submission", sub.id,
                 {"country": sub.country, "method": sub.method})
    session.flush()
    return sub


# ------------------------------------------------------------------------ candidates and lock


def candidates(session: Session, schedule: Schedule) -> list[Candidate]:
    """Scored entries of competing teams that may count: on the board, not withdrawn, made
    before the end."""
    rows = session.execute(
        select(Submission.id, Submission.team_id, Submission.country, Submission.method,
               Submission.created_at, Score.scorer_version, Score.split, Score.task, Score.auc,
               Score.ci_low, Score.ci_high, Score.n_pos, Score.n_neg)
        .join(Team, Team.id == Submission.team_id)
        .join(Score, Score.submission_id == Submission.id)
        .where(Submission.state.in_(ON_BOARD), Submission.hidden.is_(False),
               Submission.disqualified.is_(False), Submission.withdrawn.is_(False),
               Team.is_organiser.is_(False), Score.split.in_(("public", "private")))
    ).all()
    heads: dict[int, tuple[int, str, str]] = {}
    by_version: dict[int, dict[str, dict[str, dict[str, dict[str, Any]]]]] = {}
    for (sid, team_id, country, method, created_at, version, split, task, auc, low, high,
         n_pos, n_neg) in rows:
        if schedule.is_post_challenge(created_at):
            continue
        heads[sid] = (team_id, country, method)
        by_version.setdefault(sid, {}).setdefault(version, {}).setdefault(split, {})[task] = {
            "auc": auc, "ci_low": low, "ci_high": high, "n_pos": n_pos, "n_neg": n_neg}
    out: list[Candidate] = []
    order: dict[str, int] = {t: i for i, t in enumerate(TASKS)}
    for sid, (team_id, country, method) in heads.items():
        shown = challenge.shown_version(by_version[sid])
        assert shown is not None
        splits = by_version[sid][shown]
        out.append(Candidate(
            submission_id=sid, team_id=team_id, country=country, method=method,
            scorer_version=shown,
            public=dict(sorted(splits.get("public", {}).items(), key=lambda kv: order[kv[0]])),
            private=dict(sorted(splits.get("private", {}).items(),
                                key=lambda kv: order[kv[0]]))))
    return sorted(out, key=lambda c: c.submission_id)


def _best_first(items: Sequence[Candidate], split: str) -> list[Candidate]:
    def key(c: Candidate) -> tuple[float, int]:
        mean = Candidate.mean(c.public if split == "public" else c.private)
        # Earlier submissions win exact ties (their ids are smaller).
        return (-(mean if mean is not None else float("-inf")), c.submission_id)

    return sorted(items, key=key)


@dataclass(frozen=True)
class Plan:
    """Who counts, per (team, country): the selected candidates with `auto` marks, and the
    one of them with the best private score."""

    selected: dict[tuple[int, str], list[tuple[Candidate, bool]]]
    chosen: dict[tuple[int, str], tuple[Candidate, bool]]


def plan_final(session: Session, schedule: Schedule) -> Plan:
    """The final ranking's inputs now: the teams' selections, filled up to the limit with their
    best public entries (auto). Pure read: `lock` stores it."""
    pool = candidates(session, schedule)
    by_id = {c.submission_id: c for c in pool}
    manual = session.execute(select(Selection.submission_id, Selection.auto)).all()
    marked = {sid: bool(auto) for sid, auto in manual if sid in by_id}
    groups: dict[tuple[int, str], list[Candidate]] = {}
    for c in pool:
        groups.setdefault((c.team_id, c.country), []).append(c)
    selected: dict[tuple[int, str], list[tuple[Candidate, bool]]] = {}
    chosen: dict[tuple[int, str], tuple[Candidate, bool]] = {}
    for key, items in groups.items():
        picked = [(c, marked[c.submission_id]) for c in items if c.submission_id in marked]
        for c in _best_first([c for c in items if c.submission_id not in marked], "public"):
            if len(picked) >= schedule.selection_limit:
                break
            if Candidate.mean(c.public) is not None:
                picked.append((c, True))
        if not picked:
            continue
        selected[key] = picked
        auto_of = {c.submission_id: auto for c, auto in picked}
        best = _best_first([c for c, _ in picked], "private")[0]
        if Candidate.mean(best.private) is not None:
            chosen[key] = (best, auto_of[best.submission_id])
    return Plan(selected=selected, chosen=chosen)


def ensure_locked(session: Session, schedule: Schedule, now: datetime) -> bool:
    """Lock the selections and freeze the final board when the end has passed; True once
    locked. Commits its own work (it is the first reader after the end that does it)."""
    if not schedule.ended(now):
        return False
    if challenge.state(session).locked_at is not None:
        return True
    state = challenge.state(session, for_update=True)
    session.refresh(state)
    if state.locked_at is not None:
        session.commit()
        return True
    plan = plan_final(session, schedule)
    autos = 0
    for picked in plan.selected.values():
        for c, auto in picked:
            if auto:
                autos += 1
                session.add(Selection(submission_id=c.submission_id, team_id=c.team_id,
                                      country=c.country, auto=True, created_at=now))
    for (team_id, country), (c, auto) in plan.chosen.items():
        session.add(FinalEntry(team_id=team_id, country=country, submission_id=c.submission_id,
                               method=c.method, auto=auto, scorer_version=c.scorer_version,
                               scores=c.private, created_at=now))
    state.locked_at = now
    audit_record(session, None, "lock", "challenge", None,
                 {"end": iso(schedule.end), "auto_selected": autos,
                  "final_entries": len(plan.chosen)})
    if schedule.reveal == "at_end" and not state.revealed:
        challenge.set_revealed(session, None, True)
        state.revealed_at = now
    try:
        session.commit()
    except IntegrityError:
        # SQLite ignores FOR UPDATE: another process locked in the same instant; its rows stand.
        session.rollback()
    return True
