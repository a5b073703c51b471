"""Scoring per split and task against scikit-learn on a small prepared folder."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from scoring_factories import make_prepared, random_predictions, random_prepared
from sklearn.metrics import log_loss as sk_log_loss
from sklearn.metrics import roc_auc_score

from evaluator.predictions import Predictions
from evaluator.schema import SPLITS, TASKS, Split, Task
from evaluator.scoring import SCORER_VERSION, ScoreReport, TaskScore, score_predictions


def test_scores_equal_sklearn_for_every_split_and_task(tmp_path: Path) -> None:
    data = random_prepared(tmp_path)
    predictions = random_predictions(data)
    report = score_predictions(data, predictions)
    click = np.asarray(data.click).astype(bool)
    conversion = np.asarray(data.conversion).astype(bool)
    masks: dict[Split, npt.NDArray[np.bool_]] = {
        "public": np.asarray(data.public), "private": ~np.asarray(data.public),
        "full": np.ones(data.n_rows, dtype=bool)}
    for split, mask in masks.items():
        cases: dict[Task, tuple[npt.NDArray[np.bool_], npt.NDArray[np.float64]]] = {
            "ctr": (click[mask], predictions.ctr[mask]),
            "cvr": (conversion[mask & click], predictions.cvr[mask & click]),
            "ctcvr": (conversion[mask], predictions.ctcvr[mask]),
        }
        for task, (labels, probs) in cases.items():
            score = report.scores[split][task]
            assert score.auc == pytest.approx(roc_auc_score(labels, probs), abs=1e-12)
            expected_loss = sk_log_loss(labels, np.clip(probs, 1e-7, 1 - 1e-7), labels=[0, 1])
            assert score.logloss == pytest.approx(expected_loss, rel=1e-12)
            assert (score.n_pos, score.n_neg) == (int(labels.sum()), int((~labels).sum()))
            assert score.auc is not None
            assert score.ci_low is not None and score.ci_high is not None
            assert score.ci_low < score.auc < score.ci_high


def test_cvr_is_scored_on_clicked_rows_only(tmp_path: Path) -> None:
    data = random_prepared(tmp_path)
    report = score_predictions(data, random_predictions(data))
    full = report.scores["full"]
    assert full["cvr"].n_pos + full["cvr"].n_neg == int(np.asarray(data.click).sum())
    assert full["ctcvr"].n_pos + full["ctcvr"].n_neg == data.n_rows


def test_a_split_with_one_class_has_null_auc_and_a_reason(tmp_path: Path) -> None:
    n = 200
    click = np.arange(n) % 5 == 0
    public = np.arange(n) < 60
    conversion = click & (np.arange(n) >= 60) & (np.arange(n) % 10 == 0)
    data = make_prepared(tmp_path, click, conversion, public)
    report = score_predictions(data, random_predictions(data))
    public_cvr = report.scores["public"]["cvr"]
    assert public_cvr.auc is None and public_cvr.ci_low is None
    assert public_cvr.reason is not None and "no positives" in public_cvr.reason
    as_json = json.loads(json.dumps(report.to_json()))
    assert as_json["splits"]["public"]["cvr"]["auc"] is None
    assert "reason" in as_json["splits"]["public"]["cvr"]
    assert "reason" not in as_json["splits"]["full"]["ctr"]


def test_json_has_the_documented_shape_and_round_trips(tmp_path: Path) -> None:
    data = random_prepared(tmp_path)
    report = score_predictions(data, random_predictions(data))
    as_json = json.loads(json.dumps(report.to_json(), allow_nan=False))
    assert as_json["scorer_version"] == SCORER_VERSION
    assert list(as_json["splits"]) == list(SPLITS)
    for split in SPLITS:
        assert list(as_json["splits"][split]) == list(TASKS)
        assert set(as_json["splits"][split]["ctr"]) == {
            "auc", "ci_low", "ci_high", "logloss", "n_pos", "n_neg"
        }
    assert ScoreReport.from_json(as_json) == report


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda j: j.pop("scorer_version"), "exactly scorer_version and splits"),
        (lambda j: j["splits"].update(holdout={}), "unknown split 'holdout'"),
        (lambda j: j["splits"]["full"].update(auc={}), "unknown task 'auc'"),
        (lambda j: j["splits"]["full"]["ctr"].pop("n_pos"), r"splits.full.ctr: missing n_pos"),
        (lambda j: j["splits"]["full"]["ctr"].update(auc="high"), r"splits.full.ctr.auc"),
        (lambda j: j["splits"]["full"]["ctr"].update(n_neg=-1), r"splits.full.ctr.n_neg"),
    ],
)
def test_from_json_refuses_other_shapes_saying_where(
    tmp_path: Path, change: Callable[[dict[str, Any]], object], message: str
) -> None:
    data = random_prepared(tmp_path, n=500)
    as_json = json.loads(json.dumps(score_predictions(data, random_predictions(data)).to_json()))
    change(as_json)
    with pytest.raises(ValueError, match=message):
        ScoreReport.from_json(as_json)


def test_predictions_of_another_length_are_refused(tmp_path: Path) -> None:
    data = random_prepared(tmp_path, n=100)
    short = Predictions(ctr=np.zeros(99), cvr=np.zeros(99), ctcvr=np.zeros(99))
    with pytest.raises(ValueError, match="the test set has 100 rows"):
        score_predictions(data, short)


def test_task_score_json_keeps_nulls_and_counts() -> None:
    score = TaskScore(None, None, None, 0.5, 0, 7, "no positives")
    assert TaskScore.from_json(score.to_json()) == score
