"""`leaderboard score` (offline scoring) and the `data` group, composed by `app.cli`. Heavy
imports stay inside the command functions so that `leaderboard --help` stays quick."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import typer

from evaluator.data.cli import data_app

if TYPE_CHECKING:
    from pathlib import Path

    from evaluator.data.prepared import PreparedData
    from evaluator.predictions import Predictions

__all__ = ["data_app", "score"]


def score(
    file: str | None = typer.Argument(None, help="prediction file (CSV, CSV.gz or Parquet)"),
    prepared: str = typer.Option(..., "--prepared", help="prepared test folder"),
    checkpoint: str | None = typer.Option(
        None, "--checkpoint", help="a TorchScript checkpoint to run instead of a file"
    ),
    outputs: str = typer.Option(
        "ctr,cvr", "--outputs", help="the checkpoint's outputs: ctr,cvr, ctr,ctcvr or ctr,cvr,ctcvr"
    ),
    device: str = typer.Option("auto", "--device", help="checkpoint: auto, cpu or cuda[:i]"),
    batch_size: int = typer.Option(
        0, "--batch-size", min=0, help="checkpoint: rows per batch (0: chosen by measurement)"
    ),
) -> None:
    """Score a prediction file, or a checkpoint run in the evaluator's sandbox, offline; prints
    JSON (per split and task: auc, ci_low, ci_high, logloss, n_pos, n_neg), the same for both.
    Exit 1 with every problem listed when the file is refused, or with the reason when the
    checkpoint is refused or its run fails; 2 when the prepared folder or the file cannot be
    used."""
    import json
    from pathlib import Path

    from evaluator.data.prepared import PreparedData, PreparedDataError
    from evaluator.predictions import PredictionFileError, parse_prediction_file
    from evaluator.scoring import score_predictions

    if (file is None) == (checkpoint is None):
        print("error: give a prediction file or --checkpoint FILE, not both", file=sys.stderr)
        raise typer.Exit(2)
    try:
        data = PreparedData.open(prepared)
    except PreparedDataError as exc:
        print(f"error: {exc} (make one with `leaderboard data prepare --csv test.csv --out DIR`)",
              file=sys.stderr)
        raise typer.Exit(2) from None
    given = file if file is not None else str(checkpoint)
    path = Path(given)
    if not path.is_file():
        print(f"error: {given}: no such file", file=sys.stderr)
        raise typer.Exit(2)
    predictions: Predictions
    if checkpoint is not None:
        predictions = _run_checkpoint(path, data, outputs, device, batch_size)
    else:
        try:
            predictions = parse_prediction_file(path, data.n_rows)
        except PredictionFileError as exc:
            print(f"{file}: {exc.summary}", file=sys.stderr)
            raise typer.Exit(1) from None
    print(json.dumps(score_predictions(data, predictions).to_json(), indent=2))


def _run_checkpoint(
    path: Path, data: PreparedData, outputs: str, device: str, batch_size: int
) -> Predictions:
    """The worker's sandboxed path (`run_checkpoint`) in a fresh child: one job per command, so a
    zygote would gain nothing. What the run measured goes to stderr."""
    from evaluator.checkpoint import (
        CheckpointFailed,
        CheckpointRejected,
        parse_outputs,
        run_checkpoint,
    )

    try:
        spec = parse_outputs(outputs)
    except ValueError as exc:
        print(f"error: --outputs: {exc}", file=sys.stderr)
        raise typer.Exit(2) from None
    try:
        run = run_checkpoint(
            path, data.path, spec, device=device, batch_size=batch_size, zygote=False
        )
    except (CheckpointRejected, CheckpointFailed) as exc:
        what = "refused" if isinstance(exc, CheckpointRejected) else "failed"
        print(f"{path}: checkpoint {what}: {exc}", file=sys.stderr)
        raise typer.Exit(1) from None
    print(
        f"{path}: {data.n_rows} rows on {run.device}, torch {run.torch_version}: "
        f"{run.duration_s:.2f} s in all, warm-up {run.warmup_s:.2f} s, forward "
        f"{run.forward_rows_per_s:,.0f} rows/s at batch {run.batch_size}",
        file=sys.stderr,
    )
    return run.to_predictions()
