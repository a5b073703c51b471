"""`leaderboard score` (evaluator/cli.py); named apart from other test_cli.py modules."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scoring_factories import random_prepared
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from app.cli import cli

runner = CliRunner()


@pytest.fixture
def prepared(tmp_path: Path) -> Path:
    random_prepared(tmp_path / "prepared", n=600, seed=3)
    return tmp_path / "prepared"


def _write_predictions(path: Path, ctr: np.ndarray, cvr: np.ndarray) -> Path:
    lines = ["row_id,ctr,cvr"] + [f"{i},{a:.6f},{b:.6f}" for i, (a, b) in
                                  enumerate(zip(ctr, cvr, strict=True))]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_score_prints_json_for_every_split_and_task(prepared: Path, tmp_path: Path) -> None:
    click = np.load(prepared / "click.npy")
    rng = np.random.default_rng(0)
    ctr = np.clip(0.3 * click + rng.random(click.size) * 0.7, 0, 1)
    file = _write_predictions(tmp_path / "pred.csv", ctr, rng.random(click.size))
    result = runner.invoke(cli, ["score", "--prepared", str(prepared), str(file)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report["splits"]) == {"public", "private", "full"}
    assert set(report["splits"]["full"]) == {"ctr", "cvr", "ctcvr"}
    expected = roc_auc_score(click, np.round(ctr, 6))
    assert report["splits"]["full"]["ctr"]["auc"] == pytest.approx(expected, abs=1e-12)


def test_refused_file_exits_1_listing_the_problems_on_stderr(
    prepared: Path, tmp_path: Path
) -> None:
    file = tmp_path / "bad.csv"
    file.write_text("row_id,ctr,cvr\n0,nan,0.5\n0,0.5,1.5\n")
    result = runner.invoke(cli, ["score", "--prepared", str(prepared), str(file)])
    assert result.exit_code == 1
    assert result.stdout == ""
    for expected in ["line 2 'nan'", "line 3 '1.5'", "duplicate row_id", "missing row_id"]:
        assert expected in result.stderr


def test_folder_that_is_not_prepared_gets_a_clear_message(tmp_path: Path) -> None:
    file = tmp_path / "pred.csv"
    file.write_text("row_id,ctr,cvr\n0,0.5,0.5\n")
    result = runner.invoke(cli, ["score", "--prepared", str(tmp_path / "nowhere"), str(file)])
    assert result.exit_code == 2
    assert "not a prepared folder" in result.stderr and "leaderboard data prepare" in result.stderr


def test_missing_prediction_file_gets_a_clear_message(prepared: Path, tmp_path: Path) -> None:
    result = runner.invoke(cli, ["score", "--prepared", str(prepared), str(tmp_path / "no.csv")])
    assert result.exit_code == 2
    assert "no such file" in result.stderr
