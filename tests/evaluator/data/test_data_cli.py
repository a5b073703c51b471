"""`leaderboard data …` (evaluator/data/cli.py); named apart from other test_cli.py modules."""

import json
from pathlib import Path

from data_factories import (
    fixture_rows,
    raw_item_fields,
    raw_user_fields,
    write_lines,
    write_processed,
)
from typer.testing import CliRunner

from evaluator.data.cli import data_app
from evaluator.data.prepared import PreparedData

runner = CliRunner()


def test_synth_then_prepare_gives_a_prepared_folder(tmp_path: Path) -> None:
    made = runner.invoke(
        data_app,
        [
            "synth",
            "--out",
            str(tmp_path),
            "--countries",
            "nl,US",
            "--train-rows",
            "500",
            "--test-rows",
            "700",
            "--seed",
            "4",
        ],
    )
    assert made.exit_code == 0, made.output
    assert made.output.split() == [str(tmp_path / "AliExpress_NL"), str(tmp_path / "AliExpress_US")]

    csv = tmp_path / "AliExpress_US/test.csv"
    prepared = runner.invoke(
        data_app, ["prepare", "--csv", str(csv), "--out", str(tmp_path / "US"), "--quiet"]
    )
    assert prepared.exit_code == 0, prepared.output
    meta = json.loads(prepared.output)
    assert meta["n_rows"] == 700
    assert PreparedData.open(tmp_path / "US").meta.source_sha256 == meta["source_sha256"]


def test_synth_refuses_an_unknown_country(tmp_path: Path) -> None:
    result = runner.invoke(data_app, ["synth", "--out", str(tmp_path), "--countries", "NL,XX"])
    assert result.exit_code == 1
    assert "unknown country 'XX'" in result.output
    assert not any(tmp_path.iterdir())


def test_prepare_reports_a_bad_line_and_exits_1(tmp_path: Path) -> None:
    rows = fixture_rows()
    rows[3][80] = "x"
    csv = write_processed(tmp_path / "test.csv", rows)
    result = runner.invoke(data_app, ["prepare", "--csv", str(csv), "--out", str(tmp_path / "p")])
    assert result.exit_code == 1
    assert "line 5, column click: 'x' is not an integer" in result.output
    assert "Traceback" not in result.output


def test_process_raw_writes_train_and_test(tmp_path: Path) -> None:
    rows = fixture_rows()
    raw = tmp_path / "raw"
    raw.mkdir()
    for split in ("train", "test"):
        write_lines(raw / f"nl_user_{split}.csv", [raw_user_fields(row) for row in rows[:1]])
        write_lines(raw / f"nl_item_{split}.csv", [raw_item_fields(row) for row in rows])
    result = runner.invoke(
        data_app,
        ["process-raw", "--raw", str(raw), "--country", "NL", "--out", str(tmp_path / "out")],
    )
    assert result.exit_code == 0, result.output
    kept = sum(row[0] == rows[0][0] for row in rows)
    assert f"{kept} rows (20 item lines, {20 - kept} without a user row; 1 user rows)" in (
        result.output
    )
    assert (tmp_path / "out/train.csv").is_file()
    assert (tmp_path / "out/test.csv").is_file()


def test_process_raw_names_missing_files(tmp_path: Path) -> None:
    result = runner.invoke(
        data_app, ["process-raw", "--raw", str(tmp_path), "--country", "FR", "--out", "x"]
    )
    assert result.exit_code == 1
    assert "fr_user_train.csv" in result.output
