"""`leaderboard score` (offline scoring) and the `data` group, composed by `app.cli`. Heavy
imports stay inside the command functions so that `leaderboard --help` stays quick."""

from __future__ import annotations

import sys

import typer

from evaluator.data.cli import data_app

__all__ = ["data_app", "score"]


def score(
    file: str = typer.Argument(..., help="prediction file (CSV, CSV.gz or Parquet)"),
    prepared: str = typer.Option(..., "--prepared", help="prepared test folder"),
) -> None:
    """Score a prediction file offline; prints JSON (per split and task: auc, ci_low, ci_high,
    logloss, n_pos, n_neg). Exit 1 with every problem listed when the file is refused, 2 when
    the prepared folder or the file cannot be used."""
    import json
    from pathlib import Path

    from evaluator.data.prepared import PreparedData, PreparedDataError
    from evaluator.predictions import PredictionFileError, parse_prediction_file
    from evaluator.scoring import score_predictions

    try:
        data = PreparedData.open(prepared)
    except PreparedDataError as exc:
        print(f"error: {exc} (make one with `leaderboard data prepare --csv test.csv --out DIR`)",
              file=sys.stderr)
        raise typer.Exit(2) from None
    path = Path(file)
    if not path.is_file():
        print(f"error: {file}: no such file", file=sys.stderr)
        raise typer.Exit(2)
    try:
        predictions = parse_prediction_file(path, data.n_rows)
    except PredictionFileError as exc:
        print(f"{file}: {exc.summary}", file=sys.stderr)
        raise typer.Exit(1) from None
    print(json.dumps(score_predictions(data, predictions).to_json(), indent=2))
