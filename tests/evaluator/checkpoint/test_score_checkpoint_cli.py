"""`leaderboard score --checkpoint` (evaluator/cli.py): a checkpoint scored offline through the
worker's sandboxed path, printing the JSON a prediction file gets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from checkpoint_factories import NaNAtRow3, WrongShape, reference_outputs, save, script
from checkpoint_factories import truncated_copy as truncated
from typer.testing import CliRunner

from app.cli import cli

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
runner = CliRunner()


def _close(a: Any, b: Any, where: str = "") -> None:
    """Same keys and values, floats to 1e-9 (float32 outputs, float64 sums)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for key in a:
            _close(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, float) and isinstance(b, float):
        assert a == pytest.approx(b, abs=1e-9), where
    else:
        assert a == b, where


def test_a_checkpoint_prints_the_json_of_its_own_predictions_as_a_file(
    honest_archive: Path, prepared: Path, tmp_path: Path
) -> None:
    expected = reference_outputs(honest_archive, prepared)
    file = tmp_path / "own.csv"
    lines = ["row_id,ctr,ctcvr"]
    lines += [f"{i},{ctr!r},{ctcvr!r}" for i, (ctr, ctcvr) in enumerate(expected.T.tolist())]
    file.write_text("\n".join(lines) + "\n")
    by_file = runner.invoke(cli, ["score", "--prepared", str(prepared), str(file)])
    assert by_file.exit_code == 0, by_file.output
    by_checkpoint = runner.invoke(
        cli,
        ["score", "--prepared", str(prepared), "--checkpoint", str(honest_archive),
         "--outputs", "ctr,ctcvr"],
    )
    assert by_checkpoint.exit_code == 0, by_checkpoint.output
    _close(json.loads(by_checkpoint.stdout), json.loads(by_file.stdout))
    assert "rows on cpu" in by_checkpoint.stderr and "rows/s at batch" in by_checkpoint.stderr


def _score_checkpoint(prepared: Path, archive: Path) -> Any:
    return runner.invoke(cli, ["score", "--prepared", str(prepared), "--checkpoint", str(archive)])


def test_a_refused_archive_exits_1_with_the_reason(prepared: Path, tmp_path: Path) -> None:
    archive = truncated(save(script(WrongShape()), tmp_path / "whole.pt"), tmp_path / "cut.pt")
    result = _score_checkpoint(prepared, archive)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "checkpoint refused: " in result.stderr and "not a valid zip archive" in result.stderr


def test_a_failing_run_exits_1_with_the_reason(prepared: Path, tmp_path: Path) -> None:
    archive = save(script(NaNAtRow3()), tmp_path / "nan.pt")
    result = _score_checkpoint(prepared, archive)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert ("checkpoint failed: bad output: output cvr is not a finite number at 1 row"
            in result.stderr)


@pytest.mark.parametrize("extra", [["file.csv"], []], ids=["both", "neither"])
def test_a_file_or_a_checkpoint_is_required_not_both(
    extra: list[str], honest_archive: Path, prepared: Path
) -> None:
    given = ["--checkpoint", str(honest_archive)] if extra else []
    result = runner.invoke(cli, ["score", "--prepared", str(prepared), *given, *extra])
    assert result.exit_code == 2
    assert "give a prediction file or --checkpoint FILE, not both" in result.stderr


def test_unknown_outputs_are_refused_before_anything_runs(
    honest_archive: Path, prepared: Path
) -> None:
    result = runner.invoke(
        cli,
        ["score", "--prepared", str(prepared), "--checkpoint", str(honest_archive),
         "--outputs", "cvr,ctr"],
    )
    assert result.exit_code == 2
    assert "--outputs: outputs 'cvr,ctr' not understood" in result.stderr


def test_a_missing_checkpoint_gets_a_clear_message(prepared: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        cli, ["score", "--prepared", str(prepared), "--checkpoint", str(tmp_path / "no.pt")]
    )
    assert result.exit_code == 2
    assert "no such file" in result.stderr


def test_the_checkpoints_outputs_decide_the_columns(
    honest_archive: Path, prepared: Path
) -> None:
    # Declared ctr,cvr, the same model's second output is taken as cvr, so pCTCVR differs from
    # the ctr,ctcvr reading (its log-loss: the small test set has no conversion for an AUC).
    runs = {
        outputs: json.loads(runner.invoke(
            cli, ["score", "--prepared", str(prepared), "--checkpoint", str(honest_archive),
                  "--outputs", outputs]).stdout)
        for outputs in ("ctr,cvr", "ctr,ctcvr")
    }
    full = {k: v["splits"]["full"] for k, v in runs.items()}
    assert full["ctr,cvr"]["ctr"] == full["ctr,ctcvr"]["ctr"]
    assert not np.isclose(
        full["ctr,cvr"]["ctcvr"]["logloss"], full["ctr,ctcvr"]["ctcvr"]["logloss"]
    )
