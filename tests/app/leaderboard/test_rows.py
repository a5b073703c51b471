"""Rows and labels of each leaderboard column (app/leaderboard/rows.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from app.leaderboard.rows import column_rows
from evaluator.data.prepared import FORMAT_VERSION, PreparedData
from evaluator.schema import SPLITS, TASKS
from evaluator.tasks import task_rows

CLICK = np.array([1, 0, 1, 1, 0, 0, 1, 0], dtype=np.int8)
CONVERSION = np.array([1, 0, 0, 1, 0, 0, 0, 0], dtype=np.int8)
PUBLIC = np.array([1, 1, 0, 1, 0, 0, 1, 0], dtype=bool)


@pytest.fixture
def prepared(tmp_path: Path) -> PreparedData:
    n = CLICK.size
    meta = {"format_version": FORMAT_VERSION, "n_rows": n, "n_public": int(PUBLIC.sum()),
            "source_name": "t.csv", "source_sha256": "0" * 64, "split_salt": "s",
            "categorical_max": [0] * 16, "n_clicks": int(CLICK.sum()),
            "n_conversions": int(CONVERSION.sum())}
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    arrays = {"click": CLICK, "conversion": CONVERSION, "public": PUBLIC,
              "categorical": np.zeros((n, 16), np.int32),
              "numerical": np.zeros((n, 63), np.float32), "search_id": np.arange(n)}
    for name, array in arrays.items():
        np.save(tmp_path / f"{name}.npy", array)
    return PreparedData.open(tmp_path)


def test_ctr_column_is_every_row_of_the_split(prepared: PreparedData) -> None:
    rows = column_rows(prepared, "public", "ctr")
    assert rows.index.tolist() == [0, 1, 3, 6]
    assert rows.labels.tolist() == [1, 0, 1, 1]


def test_cvr_column_is_the_clicked_rows_of_the_split(prepared: PreparedData) -> None:
    rows = column_rows(prepared, "private", "cvr")
    assert rows.index.tolist() == [2]
    assert rows.labels.tolist() == [0]


def test_ctcvr_column_of_the_full_set_labels_conversions(prepared: PreparedData) -> None:
    rows = column_rows(prepared, "full", "ctcvr")
    assert rows.index.tolist() == list(range(8))
    assert rows.labels.tolist() == CONVERSION.tolist()


def test_every_column_is_its_task_rows_within_its_split(prepared: PreparedData) -> None:
    splits = {"public": PUBLIC, "private": ~PUBLIC, "full": np.ones(CLICK.size, dtype=bool)}
    for split in SPLITS:
        for task in TASKS:
            rows = column_rows(prepared, split, task)
            task_index = task_rows(task, CLICK, CONVERSION).indices()
            expected = task_index[splits[split][task_index]]
            assert rows.index.tolist() == expected.tolist(), (split, task)
            labels = CLICK if task == "ctr" else CONVERSION
            assert rows.labels.tolist() == labels[expected].tolist(), (split, task)
