"""`leaderboard baselines train` through the real entry point (baselines/cli.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import cli

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

runner = CliRunner()
FAST = ["--preset", "demo", "--max-epochs", "1", "--threads", "1", "--quiet"]


def test_train_one_model_writes_its_run_folder(data_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = runner.invoke(
        cli,
        [
            "baselines",
            "train",
            "--model",
            "esmm",
            "--country",
            "nl",
            "--data",
            str(data_root),
            "--out",
            str(out),
            "--embed-dim",
            "8",
            *FAST,
        ],
    )
    assert result.exit_code == 0, result.output
    assert "esmm NL best epoch 1/1" in result.output
    config = json.loads((out / "config.json").read_text())
    assert config["arch"]["embed_dim"] == 8 and config["max_epochs"] == 1
    assert (out / "model.pt").is_file() and (out / "predictions.csv.gz").is_file()


def test_train_all_writes_one_run_per_challenge_model(data_root: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        cli,
        ["baselines", "train", "--all", "--data", str(data_root), "--out", str(tmp_path), *FAST],
    )
    assert result.exit_code == 0, result.output
    runs = sorted(p.name for p in tmp_path.iterdir())
    assert runs == ["NL_aitm", "NL_dnn", "NL_esmm", "NL_mmoe", "NL_ple"]


def test_an_unknown_model_is_refused_with_the_choices(data_root: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        cli,
        [
            "baselines",
            "train",
            "--model",
            "xgboost",
            "--data",
            str(data_root),
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 2
    assert "unknown model 'xgboost'" in result.output and "mmoe" in result.output


def test_train_without_a_model_asks_for_one(data_root: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        cli, ["baselines", "train", "--data", str(data_root), "--out", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "--all" in result.output


def test_train_on_a_folder_without_data_says_so(tmp_path: Path) -> None:
    result = runner.invoke(
        cli,
        [
            "baselines",
            "train",
            "--model",
            "dnn",
            "--data",
            str(tmp_path),
            "--out",
            str(tmp_path / "run"),
        ],
    )
    assert result.exit_code == 2
    assert "no country data" in result.output


def test_register_refuses_a_folder_that_holds_no_run(tmp_path: Path) -> None:
    result = runner.invoke(
        cli,
        ["baselines", "register", str(tmp_path), "--server", "http://127.0.0.1:9", "--token", "t"],
    )
    assert result.exit_code == 2
    assert "not a run folder" in result.output


def test_register_reports_an_unreachable_server_per_run(esmm_run: Path) -> None:
    result = runner.invoke(
        cli,
        ["baselines", "register", str(esmm_run), "--server", "http://127.0.0.1:9", "--token", "t"],
    )
    assert result.exit_code == 1
    assert "error:" in result.output
