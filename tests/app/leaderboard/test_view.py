"""Building the board from scored entries (app/leaderboard/view.py)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import pytest
from leaderboard_factories import T0, entry

from app.leaderboard.reference import ReportedRow, reported_rows
from app.leaderboard.view import (
    ALL_COLUMNS,
    Board,
    Column,
    Entry,
    GroupsState,
    Ranking,
    build_board,
)
from evaluator.compare import TieResult
from evaluator.schema import COUNTRIES, Country, Split


def board(
    entries: Iterable[Entry],
    *,
    split: Split = "public",
    revealed: bool = False,
    country: Country | None = None,
    ranking: Ranking = "mean_auc",
    groups: Mapping[Column, Mapping[int, TieResult]] | None = None,
    groups_state: GroupsState = "unavailable",
    reported: Sequence[ReportedRow] = (),
) -> Board:
    return build_board(entries, split=split, revealed=revealed, country=country, ranking=ranking,
                       groups=groups, groups_state=groups_state, reported=reported,
                       generated_at=T0)


def full(team: str, method: str, auc: float, first_id: int, *, team_id: int) -> list[Entry]:
    return [entry(first_id + i, team, method, cc, auc, team_id=team_id)
            for i, cc in enumerate(COUNTRIES)]


def test_row_shows_the_latest_submission_per_country() -> None:
    entries = [
        entry(1, "a", "m", "NL", 0.9, team_id=1, minutes=0),
        entry(2, "a", "m", "NL", 0.7, team_id=1, minutes=5),
        entry(3, "a", "m", "ES", 0.8, team_id=1, minutes=1),
    ]
    (row,) = board(entries).rows
    assert row.submissions == {"NL": 2, "ES": 3}
    assert row.cells[("NL", "ctr")].auc == 0.7


def test_rows_are_keyed_by_team_and_method() -> None:
    entries = [entry(1, "a", "m1", "NL", 0.7, team_id=1), entry(2, "a", "m2", "NL", 0.8,
                                                                 team_id=1)]
    assert sorted(r.method for r in board(entries).rows) == ["m1", "m2"]


def test_complete_rows_rank_above_better_incomplete_ones() -> None:
    entries = [*full("complete", "m", 0.7, 10, team_id=1),
               entry(1, "partial", "m", "NL", 0.99, team_id=2)]
    rows = board(entries).rows
    assert [(r.team, r.rank, r.complete) for r in rows] == [("complete", 1, True),
                                                           ("partial", 2, False)]
    assert rows[0].mean_auc == pytest.approx(0.7)
    assert rows[1].n_cells == 3


def test_best_auc_of_each_column_is_marked() -> None:
    entries = [entry(1, "a", "m", "NL", {"ctr": 0.7, "cvr": 0.9, "ctcvr": 0.8}, team_id=1),
               entry(2, "b", "m", "NL", {"ctr": 0.75, "cvr": 0.6, "ctcvr": 0.8}, team_id=2)]
    rows = {r.team: r for r in board(entries, country="NL").rows}
    assert rows["b"].cells[("NL", "ctr")].best
    assert not rows["a"].cells[("NL", "ctr")].best
    assert rows["a"].cells[("NL", "cvr")].best
    # Equal best AUCs are both bold.
    assert rows["a"].cells[("NL", "ctcvr")].best
    assert rows["b"].cells[("NL", "ctcvr")].best


def test_country_board_has_three_columns_and_only_that_countrys_rows() -> None:
    entries = [entry(1, "a", "m", "NL", 0.7, team_id=1), entry(2, "b", "m", "ES", 0.8,
                                                                team_id=2)]
    result = board(entries, country="ES")
    assert result.columns == (("ES", "ctr"), ("ES", "cvr"), ("ES", "ctcvr"))
    assert [r.team for r in result.rows] == ["b"]
    assert result.rows[0].complete


def test_average_rank_mode_orders_by_mean_place() -> None:
    entries = [
        entry(1, "a", "m", "NL", {"ctr": 0.9, "cvr": 0.9, "ctcvr": 0.5}, team_id=1),
        entry(2, "b", "m", "NL", {"ctr": 0.8, "cvr": 0.8, "ctcvr": 0.99}, team_id=2),
        entry(3, "c", "m", "NL", {"ctr": 0.85, "cvr": 0.85, "ctcvr": 0.98}, team_id=3),
    ]
    # mean AUC: b 0.863, c 0.893, a 0.767; places: a (1,1,3)=5/3, b (3,3,1)=7/3, c (2,2,2)=2
    by_mean = board(entries, country="NL").rows
    by_rank = board(entries, country="NL", ranking="average_rank").rows
    assert [r.team for r in by_mean] == ["c", "b", "a"]
    assert [r.team for r in by_rank] == ["a", "c", "b"]
    assert by_rank[0].average_rank == pytest.approx(5 / 3)


def test_undefined_auc_keeps_its_reason_and_no_group() -> None:
    e = entry(1, "a", "m", "NL", {"ctr": 0.7, "cvr": None, "ctcvr": 0.8}, team_id=1)
    groups: dict[Column, dict[int, TieResult]] = {
        ("NL", "cvr"): {1: TieResult(auc=0.5, group=1, leader=1, p_value=None)}}
    (row,) = board([e], country="NL", groups=groups, groups_state="ready").rows
    cell = row.cells[("NL", "cvr")]
    assert cell.auc is None
    assert cell.reason == "one class only"
    assert cell.group is None


def test_tie_groups_reach_their_cells() -> None:
    entries = [entry(1, "a", "m", "NL", 0.8, team_id=1), entry(2, "b", "m", "NL", 0.79,
                                                                team_id=2)]
    groups: dict[Column, dict[int, TieResult]] = {
        ("NL", "ctr"): {1: TieResult(0.8, 1, 1, None), 2: TieResult(0.79, 1, 1, 0.3)}}
    rows = {r.team: r for r in board(entries, groups=groups, groups_state="ready").rows}
    assert rows["b"].cells[("NL", "ctr")].group == 1
    assert rows["b"].cells[("NL", "ctr")].p_value == 0.3
    assert rows["a"].cells[("NL", "ctr")].p_value is None


def test_reported_rows_stay_apart_from_measured_ones() -> None:
    result = board([entry(1, "a", "m", "NL", 0.7, team_id=1)],
                   reported=reported_rows("challenge") + reported_rows("mtreclib"))
    assert [r.team for r in result.rows] == ["a"]
    challenge = [r for r in result.reported if r.source == "challenge"]
    assert len(challenge) == 5
    assert all(r.complete and len(r.auc) == len(ALL_COLUMNS) for r in challenge)
    # The library published no CVR AUC: its rows are incomplete and listed after.
    assert all(not r.complete for r in result.reported if r.source == "mtreclib")
    assert result.reported[-1].source == "mtreclib"


def test_column_without_any_auc_does_not_make_rows_incomplete() -> None:
    entries = [entry(1, "a", "m", "NL", {"ctr": 0.7, "cvr": None, "ctcvr": 0.8}, team_id=1),
               entry(2, "b", "m", "NL", {"ctr": 0.75, "cvr": None, "ctcvr": 0.9}, team_id=2)]
    result = board(entries, country="NL")
    assert result.ranked_columns == (("NL", "ctr"), ("NL", "ctcvr"))
    assert all(r.complete for r in result.rows)
    assert [r.team for r in result.rows] == ["b", "a"]
    assert result.rows[0].mean_auc == pytest.approx(0.825)
