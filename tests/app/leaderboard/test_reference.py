"""Published reference results shipped with the package (app/leaderboard/reference.py)."""

from __future__ import annotations

import csv
from importlib import resources

import pytest

from app.leaderboard.reference import (
    ReferenceDataError,
    parse_reference_csv,
    reported_rows,
)
from evaluator.schema import COUNTRIES, TASKS


def test_challenge_baselines_cover_all_twelve_cells() -> None:
    rows = reported_rows("challenge")
    assert {r.method for r in rows} == {"DNN", "MMoE", "PLE", "ESMM", "AITM"}
    for row in rows:
        assert set(row.auc) == {(c, t) for c in COUNTRIES for t in TASKS}


def test_reported_values_equal_the_shipped_csv() -> None:
    text = resources.files("app").joinpath("reference", "mtreclib_results.csv").read_text()
    expected = {(r["model"], r["country"], r["task"]): (float(r["auc"]), float(r["logloss"]))
                for r in csv.DictReader(text.splitlines())}
    got = {(row.method, c, t): (auc, row.logloss[(c, t)])
           for row in reported_rows("mtreclib") for (c, t), auc in row.auc.items()}
    assert got == expected


def test_malformed_reference_row_names_its_line() -> None:
    text = "model,country,task,auc\nDNN,NL,ctr,0.72\nDNN,XX,ctr,0.7\n"
    with pytest.raises(ReferenceDataError, match=r"bad\.csv line 3: unknown country"):
        parse_reference_csv(text, "challenge", "bad.csv")


def test_reference_auc_outside_unit_interval_is_refused() -> None:
    with pytest.raises(ReferenceDataError, match="outside"):
        parse_reference_csv("model,country,task,auc\nDNN,NL,ctr,1.5\n", "challenge", "x.csv")
