"""Small prepared folders and predictions for the scoring and `leaderboard score` tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from evaluator.data.prepared import FORMAT_VERSION, PreparedData, PreparedMeta
from evaluator.predictions import Predictions


def make_prepared(
    folder: Path,
    click: np.ndarray,
    conversion: np.ndarray,
    public: np.ndarray,
) -> PreparedData:
    """Write a prepared folder (the format of evaluator/data/prepared.py) and open it."""
    n = click.size
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "click.npy", click.astype(np.int8))
    np.save(folder / "conversion.npy", conversion.astype(np.int8))
    np.save(folder / "categorical.npy", np.zeros((n, 16), dtype=np.int32))
    np.save(folder / "numerical.npy", np.zeros((n, 63), dtype=np.float32))
    np.save(folder / "public.npy", public.astype(bool))
    np.save(folder / "search_id.npy", np.arange(n, dtype=np.int64))
    meta = PreparedMeta(
        format_version=FORMAT_VERSION, n_rows=n, n_public=int(public.sum()),
        source_name="test.csv", source_sha256="0" * 64, split_salt="test",
        categorical_max=[0] * 16, n_clicks=int(click.sum()), n_conversions=int(conversion.sum()),
    )
    (folder / "meta.json").write_text(meta.to_json())
    return PreparedData.open(folder)


def random_prepared(folder: Path, n: int = 4000, seed: int = 0) -> PreparedData:
    rng = np.random.default_rng(seed)
    click = rng.random(n) < 0.2
    conversion = click & (rng.random(n) < 0.25)
    public = rng.random(n) < 0.3
    return make_prepared(folder, click, conversion, public)


def random_predictions(data: PreparedData, seed: int = 1) -> Predictions:
    rng = np.random.default_rng(seed)
    n = data.n_rows
    ctr = np.clip(0.2 + 0.2 * data.click + rng.normal(0, 0.15, n), 0, 1).round(3)
    cvr = np.clip(0.2 + 0.2 * data.conversion + rng.normal(0, 0.2, n), 0, 1).round(2)
    return Predictions(ctr=ctr, cvr=cvr, ctcvr=ctr * cvr)
