"""The leaderboard as data: rows, cells, ranks and groups, built from scored entries.

Pure (no DB, no HTTP): `service.py` feeds it entries read from the database, and the JSON, CSV
and HTML outputs all render the one `Board` built here, so they can never disagree.

Rows are (team, method) pairs. A row shows, per country, the team's latest scored submission for
that method. Rows are ranked over the columns of the view (12 for the overall board, 3 for a
country); rows missing a column are ranked after every complete row (see `evaluator.compare`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from app.disclosure import shown
from evaluator.compare import (
    AVERAGE_RANK_FORMULA,
    MEAN_AUC_FORMULA,
    TieResult,
    rank_by_average_rank,
    rank_by_mean_auc,
)
from evaluator.schema import COUNTRIES, TASKS, Country, Split, Task

from .reference import ReportedRow

Column = tuple[Country, Task]
Ranking = Literal["mean_auc", "average_rank"]
RANKINGS: tuple[Ranking, ...] = ("mean_auc", "average_rank")
GroupsState = Literal["ready", "pending", "unavailable"]

ALL_COLUMNS: tuple[Column, ...] = tuple((c, t) for c in COUNTRIES for t in TASKS)
TASK_LABELS: dict[Task, str] = {"ctr": "CTR", "cvr": "CVR", "ctcvr": "CTCVR"}

MISSING_RULE = (
    "Rows with every column are ranked first; a row missing a column (a country not yet "
    "submitted, or a task without an AUC) is ranked after them, by the same measure over the "
    "columns it has. A column where no entry has an AUC (one class only on this split) is "
    "left out of C."
)
GROUP_RULE = (
    "Group 1 holds the column's best entry and every entry whose AUC is not significantly "
    "different from it (paired DeLong test on the same rows, two-sided p ≥ 0.05); the best of "
    "the rest leads group 2, and so on. Groups follow the tests, not the AUC order: an entry "
    "whose predictions are much like the leader's can be told apart from it even when a "
    "slightly weaker, less alike entry cannot."
)


def columns_for(country: Country | None) -> tuple[Column, ...]:
    if country is None:
        return ALL_COLUMNS
    return tuple((country, t) for t in TASKS)


@dataclass(frozen=True)
class TaskResult:
    """One stored score of one submission for one task on the shown split."""

    auc: float | None
    ci_low: float | None
    ci_high: float | None
    logloss: float | None
    n_pos: int
    n_neg: int
    reason: str | None = None


@dataclass(frozen=True)
class Entry:
    """A scored, visible submission: the input of the board."""

    submission_id: int
    team_id: int
    team: str
    method: str
    country: Country
    is_baseline: bool
    submitted_at: datetime
    scorer_version: str
    results: Mapping[Task, TaskResult]
    verified: bool = False
    post_challenge: bool = False  # made after the end: shown apart, never ranked finally


@dataclass(frozen=True)
class Cell:
    submission_id: int
    auc: float | None
    ci_low: float | None
    ci_high: float | None
    logloss: float | None
    n_pos: int
    n_neg: int
    reason: str | None
    group: int | None = None
    p_value: float | None = None  # against the leader of its group; None for a leader
    best: bool = False
    verified: bool = False  # the organisers ran its checkpoint and matched the file's AUCs
    post_challenge: bool = False


@dataclass
class Row:
    team_id: int
    team: str
    method: str
    is_baseline: bool
    cells: dict[Column, Cell] = field(default_factory=dict)
    submissions: dict[Country, int] = field(default_factory=dict)
    rank: int | None = None
    mean_auc: float | None = None
    average_rank: float | None = None
    n_cells: int = 0
    complete: bool = False

    @property
    def key(self) -> tuple[int, str]:
        return (self.team_id, self.method)

    def top_group_cells(self) -> int:
        return sum(1 for c in self.cells.values() if c.group == 1)


@dataclass(frozen=True)
class Reported:
    method: str
    source: str
    auc: dict[Column, float]
    mean_auc: float | None
    complete: bool


@dataclass
class Board:
    split: Split
    revealed: bool
    country: Country | None
    ranking: Ranking
    columns: tuple[Column, ...]
    rows: list[Row]
    reported: list[Reported]
    groups: GroupsState
    generated_at: datetime
    scorer_versions: list[str]
    ranked_columns: tuple[Column, ...] = ()
    # Decimals of AUCs and intervals in the JSON and CSV: 4 for participants during a
    # scheduled challenge, 6 otherwise.
    digits: int = 6

    @property
    def formula(self) -> str:
        return MEAN_AUC_FORMULA if self.ranking == "mean_auc" else AVERAGE_RANK_FORMULA

    @property
    def missing_rule(self) -> str:
        return MISSING_RULE

    @property
    def group_rule(self) -> str:
        return GROUP_RULE


def latest_per_row(entries: Iterable[Entry]) -> dict[tuple[int, str], dict[Country, Entry]]:
    """For each (team, method), the latest submitted entry of each country."""
    latest: dict[tuple[int, str], dict[Country, Entry]] = {}
    for entry in entries:
        per_country = latest.setdefault((entry.team_id, entry.method), {})
        current = per_country.get(entry.country)
        if current is None or (entry.submitted_at, entry.submission_id) > (
            current.submitted_at, current.submission_id
        ):
            per_country[entry.country] = entry
    return latest


def build_board(
    entries: Iterable[Entry],
    *,
    split: Split,
    revealed: bool,
    country: Country | None,
    ranking: Ranking,
    groups: Mapping[Column, Mapping[int, TieResult]] | None,
    groups_state: GroupsState,
    reported: Sequence[ReportedRow],
    generated_at: datetime,
) -> Board:
    """Assemble the board for `country` (None: all four) from the visible scored entries.

    `groups[column][submission_id]` are the tie groups of each column, when computed.
    Before the reveal, the per-submission metrics no ranking needs (log-loss, the p-value
    against the group's leader) are rounded as app/disclosure.py says: the board is public.
    """
    columns = columns_for(country)
    latest = latest_per_row(entries)
    rows: list[Row] = []
    versions: set[str] = set()
    for (team_id, method), per_country in latest.items():
        if country is not None and country not in per_country:
            continue
        sample = next(iter(per_country.values()))
        row = Row(team_id=team_id, team=sample.team, method=method,
                  is_baseline=any(e.is_baseline for e in per_country.values()))
        for cc, entry in per_country.items():
            if country is not None and cc != country:
                continue
            row.submissions[cc] = entry.submission_id
            versions.add(entry.scorer_version)
            for task in TASKS:
                result = entry.results.get(task)
                if result is None:
                    continue
                tie = (groups or {}).get((cc, task), {}).get(entry.submission_id)
                row.cells[(cc, task)] = Cell(
                    submission_id=entry.submission_id, auc=result.auc, ci_low=result.ci_low,
                    ci_high=result.ci_high, logloss=shown(result.logloss, full=revealed),
                    n_pos=result.n_pos, n_neg=result.n_neg, reason=result.reason,
                    group=tie.group if tie is not None and result.auc is not None else None,
                    p_value=shown(tie.p_value, full=revealed) if tie is not None else None,
                    verified=entry.verified, post_challenge=entry.post_challenge,
                )
        rows.append(row)

    _mark_best(rows, columns)
    # A column where no entry has an AUC (one class only on this split) cannot rank anyone:
    # it neither counts in the means nor makes every row "incomplete".
    active = tuple(c for c in columns
                   if any(c in r.cells and r.cells[c].auc is not None for r in rows))
    _rank(rows, active, ranking)
    return Board(
        split=split, revealed=revealed, country=country, ranking=ranking, columns=columns,
        rows=rows, reported=_reported(reported, columns), groups=groups_state,
        generated_at=generated_at, scorer_versions=sorted(versions), ranked_columns=active,
    )


def _auc_cells(
    rows: Sequence[Row], columns: Sequence[Column]
) -> dict[int, dict[Column, float | None]]:
    return {
        index: {c: (row.cells[c].auc if c in row.cells else None) for c in columns}
        for index, row in enumerate(rows)
    }


def _mark_best(rows: Sequence[Row], columns: Sequence[Column]) -> None:
    for column in columns:
        aucs = [row.cells[column].auc for row in rows if column in row.cells]
        present = [a for a in aucs if a is not None]
        if not present:
            continue
        best = max(present)
        for row in rows:
            cell = row.cells.get(column)
            if cell is not None and cell.auc == best:
                row.cells[column] = _with_best(cell)


def _with_best(cell: Cell) -> Cell:
    return Cell(**{**cell.__dict__, "best": True})


def _rank(rows: list[Row], columns: Sequence[Column], ranking: Ranking) -> None:
    cells = _auc_cells(rows, columns)
    by_mean = rank_by_mean_auc(cells, columns)
    by_avg = rank_by_average_rank(cells, columns)
    for ranked in by_mean:
        row = rows[ranked.key]
        row.mean_auc = ranked.value
        row.n_cells = ranked.n_cells
        row.complete = ranked.complete
    for ranked in by_avg:
        rows[ranked.key].average_rank = ranked.value
    chosen = by_mean if ranking == "mean_auc" else by_avg
    for ranked in chosen:
        rows[ranked.key].rank = ranked.rank
    rows[:] = [rows[ranked.key] for ranked in chosen]


def _reported(reported: Sequence[ReportedRow], columns: Sequence[Column]) -> list[Reported]:
    out: list[Reported] = []
    for ref in reported:
        auc = {c: ref.auc[c] for c in columns if c in ref.auc}
        if not auc:
            continue
        complete = len(auc) == len(columns)
        mean = sum(auc.values()) / len(auc)
        out.append(Reported(method=ref.method, source=ref.source, auc=auc, mean_auc=mean,
                            complete=complete))
    out.sort(key=lambda r: (not r.complete, -(r.mean_auc or 0.0)))
    return out
