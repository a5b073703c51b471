"""The final board: after the end, one row per team; per country the team's best private score
among its selected submissions, with that entry's method and its tie group.

Read from the rows frozen at the lock (`FinalEntry`), so a later rescore never changes a
published rank: the board lists such changes apart, under `rescored_since`. Before the end only
organisers may look, at a preview built the same way from the selections as they stand.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import challenge
from app.errors import Conflict
from app.models import FinalEntry, Score, Team
from app.phases.schedule import Schedule, iso
from app.phases.selection import ensure_locked, plan_final
from evaluator.schema import TASKS, parse_country

from .export import _round, cell_json, neutralise
from .service import LeaderboardService
from .view import Board, Column, Entry, Ranking, TaskResult, build_board, columns_for


@dataclass
class FinalBoard:
    board: Board
    frozen: bool
    frozen_at: datetime | None
    end: datetime | None
    methods: dict[int, tuple[str, bool]]  # submission id → (method, auto)
    rescored: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class _Row:
    team_id: int
    country: str
    submission_id: int
    method: str
    auto: bool
    scorer_version: str
    scores: dict[str, dict[str, Any]]


def _frozen_rows(session: Session) -> list[_Row]:
    found = session.execute(select(FinalEntry).order_by(FinalEntry.id)).scalars()
    return [_Row(f.team_id, f.country, f.submission_id, f.method, bool(f.auto),
                 f.scorer_version, dict(f.scores)) for f in found]


def _preview_rows(session: Session, schedule: Schedule) -> list[_Row]:
    plan = plan_final(session, schedule)
    return [_Row(team_id, country, c.submission_id, c.method, auto, c.scorer_version,
                 c.private) for (team_id, country), (c, auto) in plan.chosen.items()]


def _rescored(session: Session, rows: list[_Row]) -> list[dict[str, Any]]:
    """Frozen rows whose submission now shows other private figures (a rescore since)."""
    ids = [r.submission_id for r in rows]
    if not ids:
        return []
    scores = session.execute(select(Score).where(Score.submission_id.in_(ids),
                                                 Score.split == "private")).scalars().all()
    by_sub: dict[int, dict[str, dict[str, float | None]]] = {}
    for s in scores:
        by_sub.setdefault(s.submission_id, {}).setdefault(s.scorer_version, {})[s.task] = s.auc
    changed: list[dict[str, Any]] = []
    for row in rows:
        versions = by_sub.get(row.submission_id, {})
        shown = challenge.shown_version(versions)
        if shown is None:
            continue
        now_aucs = versions[shown]
        then_aucs = {t: v.get("auc") for t, v in row.scores.items()}
        if shown != row.scorer_version or now_aucs != then_aucs:
            changed.append({"team_id": row.team_id, "country": row.country,
                            "submission_id": row.submission_id,
                            "frozen_scorer_version": row.scorer_version,
                            "current_scorer_version": shown, "frozen": then_aucs,
                            "current": now_aucs})
    return changed


def final_board(service: LeaderboardService, session: Session, schedule: Schedule,
                now: datetime, *, organiser: bool, ranking: Ranking = "mean_auc") -> FinalBoard:
    ended = schedule.ended(now)
    if not ended and not organiser:
        end = iso(schedule.end)
        raise Conflict({"message": "the final board is published at the end of the challenge"
                                   + (f" ({end})" if end else " (this challenge has no end "
                                                              "date)"), "end": end},
                       code="challenge_not_ended")
    if ended:
        ensure_locked(session, schedule, now)
        rows = _frozen_rows(session)
    else:
        rows = _preview_rows(session, schedule)
    teams = {t.id: t for t in session.execute(select(Team).where(
        Team.id.in_({r.team_id for r in rows}))).scalars()} if rows else {}
    entries: list[Entry] = []
    for row in rows:
        team = teams[row.team_id]
        results = {t: TaskResult(auc=v.get("auc"), ci_low=v.get("ci_low"),
                                 ci_high=v.get("ci_high"), logloss=None,
                                 n_pos=int(v.get("n_pos") or 0), n_neg=int(v.get("n_neg") or 0))
                   for t, v in row.scores.items() if t in TASKS}
        # One row per team: every entry of a team shares the board's row key.
        entries.append(Entry(submission_id=row.submission_id, team_id=row.team_id,
                             team=team.name, method="", country=parse_country(row.country),
                             is_baseline=bool(team.is_baseline), submitted_at=now,
                             scorer_version=row.scorer_version, results=results))
    columns = columns_for(None)
    members: dict[Column, list[int]] = {c: [] for c in columns}
    for entry in entries:
        for task, result in entry.results.items():
            if result.auc is not None:
                members[(entry.country, task)].append(entry.submission_id)
    members = {c: sorted(m) for c, m in members.items()}
    groups, state = service.groups.groups("private", members,
                                          service._loader(session, members),
                                          service._rows_of)
    state_row = challenge.state(session)
    board = build_board(entries, split="private", revealed=True, country=None,
                        ranking=ranking, groups=groups, groups_state=state, reported=[],
                        generated_at=state_row.locked_at or now)
    return FinalBoard(board=board, frozen=ended, frozen_at=state_row.locked_at,
                      end=schedule.end,
                      methods={r.submission_id: (r.method, r.auto) for r in rows},
                      rescored=_rescored(session, rows) if ended else [])


def final_json(final: FinalBoard) -> dict[str, Any]:
    board = final.board
    entries = []
    for row in board.rows:
        countries: dict[str, Any] = {}
        for country, sid in sorted(row.submissions.items()):
            method, auto = final.methods.get(sid, ("", False))
            countries[country] = {
                "submission_id": sid, "method": method, "auto": auto,
                "cells": {task: cell_json(row.cells[(country, task)])
                          for task in TASKS if (country, task) in row.cells}}
        entries.append({"rank": row.rank, "team": row.team, "baseline": row.is_baseline,
                        "mean_auc": _round(row.mean_auc), "complete": row.complete,
                        "n_cells": row.n_cells, "countries": countries})
    return {"split": "private", "frozen": final.frozen, "preview": not final.frozen,
            "frozen_at": final.frozen_at.isoformat() if final.frozen_at else None,
            "end": iso(final.end), "ranking": board.ranking, "formula": board.formula,
            "groups": {"state": board.groups, "rule": board.group_rule},
            "rule": "per team and country, the selected submission with the best private "
                    "mean AUC; its tie group in each column",
            "entries": entries, "rescored_since": final.rescored}


def final_csv(final: FinalBoard) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    board = final.board
    header = ["rank", "team", "baseline", "mean_auc", "complete"]
    for country, task in board.columns:
        header += [f"{country}_{task}_auc", f"{country}_{task}_group"]
    countries = sorted({c for c, _ in board.columns})
    header += [f"{c}_method" for c in countries] + [f"{c}_submission_id" for c in countries]
    writer.writerow(header)
    for row in board.rows:
        line = ["" if row.rank is None else str(row.rank), neutralise(row.team),
                "yes" if row.is_baseline else "no",
                "" if row.mean_auc is None else f"{row.mean_auc:.6f}",
                "yes" if row.complete else "no"]
        for column in board.columns:
            cell = row.cells.get(column)
            line += ["" if cell is None or cell.auc is None else f"{cell.auc:.6f}",
                     "" if cell is None or cell.group is None else str(cell.group)]
        for c in countries:
            sid = row.submissions.get(c)
            line.append(neutralise(final.methods[sid][0]) if sid is not None else "")
        for c in countries:
            sid = row.submissions.get(c)
            line.append("" if sid is None else str(sid))
        writer.writerow(line)
    return buffer.getvalue()
