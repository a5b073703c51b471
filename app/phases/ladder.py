"""Ladder feedback (Blum & Hardt, "The Ladder", ICML 2015), with the paired DeLong test.

A team's public figure in a country changes only when a new submission beats the team's shown
best there: for each task, a one-sided paired DeLong test on the public rows (new > best); the
smallest p-value, Bonferroni-corrected for the number of tasks tested, must be under the level
(`ladder_level`, default 0.05), and the mean public AUC over the tasks must be higher.
Otherwise the submission's public figures are withheld from participants and the team's best
stays what it was ("not significantly better than your best (p = …)"). Organisers see every
figure.

`decide` is the one decision rule: the service's stored decisions and
`benchmarks/bench_ladder.py` both call it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.config import Settings
from app.models import LadderDecision, Submission, Team
from app.storage import load_predictions
from evaluator.data.prepared import PreparedData, PreparedDataError
from evaluator.metrics import delong_paired_test
from evaluator.schema import TASKS
from evaluator.tasks import task_rows

from .schedule import Schedule

Column = tuple[npt.NDArray[np.integer] | npt.NDArray[np.bool_], npt.NDArray[np.floating],
               npt.NDArray[np.floating]]


@dataclass(frozen=True)
class Decision:
    released: bool
    p_value: float | None  # None: nothing to test against (a first entry), or untestable


def one_sided(labels: npt.NDArray[np.integer] | npt.NDArray[np.bool_],
              new: npt.NDArray[np.floating], best: npt.NDArray[np.floating]
              ) -> tuple[float, float, float] | None:
    """(AUC new, AUC best, one-sided p of "new is better by chance") from the paired DeLong
    test on these rows; None when the rows hold one class only."""
    test = delong_paired_test(labels, new, best)
    if test.auc_a is None or test.auc_b is None:
        return None
    if test.variance <= 0.0:
        return test.auc_a, test.auc_b, 1.0  # the same ranking: no improvement at all
    return test.auc_a, test.auc_b, 0.5 * math.erfc(test.z / math.sqrt(2.0))


def decide(columns: Sequence[Column], level: float) -> Decision:
    """Release a new figure only when the new scores beat the best ones: a higher mean AUC over
    the columns, and significantly better in at least one column after a Bonferroni correction
    over the columns tested (so one lucky column of few positives cannot release a worse
    entry)."""
    tests = [t for labels, new, best in columns if (t := one_sided(labels, new, best))]
    if not tests:
        return Decision(released=False, p_value=None)
    p = min(1.0, len(tests) * min(t[2] for t in tests))
    higher = sum(t[0] for t in tests) > sum(t[1] for t in tests)
    return Decision(released=p < level and higher, p_value=p)


def message(decision: LadderDecision | Decision) -> str:
    if decision.released:
        return "released: significantly better than your best so far" \
            if decision.p_value is not None else "released: your first entry here"
    if decision.p_value is None:
        return "not released: it could not be tested against your best (no stored predictions)"
    return f"not significantly better than your best (p = {decision.p_value:.3g})"


def public_columns(data: PreparedData, new: object, best: object) -> list[Column]:
    click = np.asarray(data.click)
    conversion = np.asarray(data.conversion)
    public = np.asarray(data.public, dtype=bool)
    columns: list[Column] = []
    for task in TASKS:
        rows = task_rows(task, click, conversion)
        keep = rows.take(public)
        index = rows.indices()[keep]
        labels = np.asarray(rows.labels)[keep]
        columns.append((labels, np.asarray(getattr(new, task), dtype=np.float64)[index],
                        np.asarray(getattr(best, task), dtype=np.float64)[index]))
    return columns


def _shown_best(session: Session, team_id: int, country: str) -> int | None:
    return session.execute(
        select(LadderDecision.submission_id)
        .join(Submission, Submission.id == LadderDecision.submission_id)
        .where(LadderDecision.team_id == team_id, LadderDecision.country == country,
               LadderDecision.released.is_(True), Submission.withdrawn.is_(False),
               Submission.hidden.is_(False), Submission.disqualified.is_(False))
        .order_by(LadderDecision.created_at.desc(), LadderDecision.submission_id.desc())
        .limit(1)).scalar_one_or_none()


def ensure_decisions(session: Session, settings: Settings, schedule: Schedule) -> int:
    """Decide every scored, undecided submission of the competing teams, in id order; returns
    how many were decided. Commits its own work (decisions are facts, made once)."""
    decided = select(LadderDecision.submission_id)
    pending = session.execute(
        select(Submission).join(Team, Team.id == Submission.team_id)
        .where(Submission.state == "scored", Team.is_organiser.is_(False),
               Team.is_baseline.is_(False), Submission.id.not_in(decided))
        .order_by(Submission.id)).scalars().all()
    opened: dict[str, PreparedData | None] = {}
    count = 0
    for sub in pending:
        if schedule.is_post_challenge(sub.created_at):
            continue
        best_id = _shown_best(session, sub.team_id, sub.country)
        if best_id is None:
            result = Decision(released=True, p_value=None)
        else:
            result = _test(settings, opened, sub, session.get(Submission, best_id),
                           schedule.ladder_level)
        try:
            with session.begin_nested():
                session.add(LadderDecision(submission_id=sub.id, team_id=sub.team_id,
                                           country=sub.country, released=result.released,
                                           p_value=result.p_value, best_id=best_id))
            count += 1
        except IntegrityError:
            pass  # another request decided it first; decisions are deterministic
    session.commit()
    return count


def _test(settings: Settings, opened: dict[str, PreparedData | None], sub: Submission,
          best: Submission | None, level: float) -> Decision:
    if sub.country not in opened:
        try:
            opened[sub.country] = PreparedData.open(Path(settings.prepared_root) / sub.country)
        except (PreparedDataError, OSError):
            opened[sub.country] = None
    data = opened[sub.country]
    new_predictions = load_predictions(settings, sub)
    best_predictions = load_predictions(settings, best) if best is not None else None
    if data is None or new_predictions is None or best_predictions is None:
        return Decision(released=False, p_value=None)
    return decide(public_columns(data, new_predictions, best_predictions), level)


def decisions(session: Session, ids: Sequence[int]) -> dict[int, LadderDecision]:
    if not ids:
        return {}
    found = session.execute(select(LadderDecision).where(
        LadderDecision.submission_id.in_(list(ids)))).scalars()
    return {d.submission_id: d for d in found}


def released_ids(session: Session) -> set[int]:
    return set(session.execute(select(LadderDecision.submission_id).where(
        LadderDecision.released.is_(True))).scalars())


def withheld_ids(session: Session) -> set[int]:
    return set(session.execute(select(LadderDecision.submission_id).where(
        LadderDecision.released.is_(False))).scalars())
