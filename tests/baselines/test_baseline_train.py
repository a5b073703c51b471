"""Training runs end to end on synthetic data (baselines/train.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from baselines_factories import FIELD_DIMS, TINY_ARCH, random_inputs, tiny_config
from sklearn.metrics import roc_auc_score

from baselines.config import MODEL_NAMES, ModelName, TrainConfig
from baselines.data import CountryData
from baselines.losses import multitask_loss
from baselines.models import OUTPUTS, build_model
from baselines.train import stop_score, task_aucs, train

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_loss_falls_on_a_tiny_set(name: ModelName) -> None:
    torch.manual_seed(0)
    model = build_model(name, FIELD_DIMS, TINY_ARCH)
    inputs = random_inputs(64, seed=2)
    generator = torch.Generator().manual_seed(3)
    click = (torch.rand(64, generator=generator) < 0.5).float()
    conversion = click * (torch.rand(64, generator=generator) < 0.5).float()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        loss = multitask_loss(model(*inputs), click, conversion, OUTPUTS[name])
        optimizer.zero_grad()
        # torch ships Tensor.backward without annotations.
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_a_run_folder_holds_config_metrics_checkpoint_predictions_and_summary(
    esmm_run: Path, nl_data: CountryData
) -> None:
    names = {p.name for p in esmm_run.iterdir()}
    assert {
        "config.json",
        "metrics.jsonl",
        "state_dict.pt",
        "model.pt",
        "predictions.csv.gz",
        "summary.json",
    } <= names
    summary = json.loads((esmm_run / "summary.json").read_text())
    epochs = [json.loads(line) for line in (esmm_run / "metrics.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in epochs] == list(range(1, summary["epochs_run"] + 1))
    assert all(
        e["samples_per_s"] > 0 and set(e["val_auc"]) == {"ctr", "cvr", "ctcvr"} for e in epochs
    )
    assert summary["train_rows"] + summary["val_rows"] == nl_data.train.n_rows
    assert summary["outputs"] == ["ctr", "cvr", "ctcvr"]


def test_the_config_file_reads_back_as_the_runs_config(esmm_run: Path) -> None:
    assert TrainConfig.load(esmm_run / "config.json") == tiny_config("esmm")


def test_predictions_cover_the_test_rows_with_the_models_outputs(
    mmoe_run: Path, nl_data: CountryData
) -> None:
    frame = pd.read_csv(mmoe_run / "predictions.csv.gz")
    assert list(frame.columns) == ["row_id", "ctr", "ctcvr"]
    assert frame["row_id"].tolist() == list(range(nl_data.test.n_rows))
    assert frame[["ctr", "ctcvr"]].to_numpy().min() > 0
    assert frame[["ctr", "ctcvr"]].to_numpy().max() < 1


def test_the_summary_reports_the_test_aucs_of_its_predictions(
    mmoe_run: Path, nl_data: CountryData
) -> None:
    frame = pd.read_csv(mmoe_run / "predictions.csv.gz")
    summary = json.loads((mmoe_run / "summary.json").read_text())
    click = np.asarray(nl_data.test.click)
    assert np.isclose(summary["test_auc"]["ctr"], roc_auc_score(click, frame["ctr"]))


def test_the_best_epoch_is_kept_and_training_stops_after_patience(mmoe_run: Path) -> None:
    summary = json.loads((mmoe_run / "summary.json").read_text())
    epochs = [json.loads(line) for line in (mmoe_run / "metrics.jsonl").read_text().splitlines()]
    scores = [stop_score(e["val_auc"])[1] for e in epochs]
    assert summary["best_epoch"] == 1 + int(np.argmax(scores))
    stopped_early = summary["epochs_run"] < 3
    assert not stopped_early or summary["epochs_run"] - summary["best_epoch"] == 2


def test_the_same_seed_gives_the_same_run(nl_data: CountryData, tmp_path: Path) -> None:
    cfg = tiny_config("aitm", max_epochs=1)
    first = train(cfg, nl_data, tmp_path / "a", progress=False, threads=1)
    second = train(cfg, nl_data, tmp_path / "b", progress=False, threads=1)
    assert first.test_auc == second.test_auc
    first_predictions = pd.read_csv(tmp_path / "a" / "predictions.csv.gz")
    assert first_predictions.equals(pd.read_csv(tmp_path / "b" / "predictions.csv.gz"))


def test_too_little_training_data_is_refused_with_the_counts(
    nl_data: CountryData, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="validation rows"):
        train(tiny_config("dnn", val_fraction=0.0001), nl_data, tmp_path, progress=False)


def test_aucs_follow_the_spec_definitions() -> None:
    rng = np.random.default_rng(0)
    click = (rng.random(400) < 0.3).astype(np.int8)
    conversion = click * (rng.random(400) < 0.3).astype(np.int8)
    predictions = rng.random((400, 3)).astype(np.float32)
    aucs = task_aucs(predictions, ("ctr", "cvr", "ctcvr"), click, conversion)
    clicked = click == 1
    assert aucs["ctr"] == pytest.approx(roc_auc_score(click, predictions[:, 0]))
    assert aucs["cvr"] == pytest.approx(roc_auc_score(conversion[clicked], predictions[clicked, 1]))
    assert aucs["ctcvr"] == pytest.approx(roc_auc_score(conversion, predictions[:, 2]))


def test_a_two_head_models_cvr_is_ctcvr_over_ctr_capped_at_one_on_clicked_rows() -> None:
    rng = np.random.default_rng(1)
    click = (rng.random(300) < 0.4).astype(np.int8)
    conversion = click * (rng.random(300) < 0.4).astype(np.int8)
    predictions = rng.random((300, 2)).astype(np.float32) * 0.9 + 0.05
    aucs = task_aucs(predictions, ("ctr", "ctcvr"), click, conversion)
    clicked = click == 1
    ratio = np.minimum(predictions[clicked, 1].astype(np.float64) / predictions[clicked, 0], 1)
    assert aucs["cvr"] == pytest.approx(roc_auc_score(conversion[clicked], ratio))


def test_an_auc_over_one_class_is_none() -> None:
    click = np.zeros(20, dtype=np.int8)
    aucs = task_aucs(np.full((20, 2), 0.5, np.float32), ("ctr", "ctcvr"), click, click)
    assert aucs == {"ctr": None, "cvr": None, "ctcvr": None}


def test_stopping_uses_cvr_and_falls_back_to_the_mean_of_defined_aucs() -> None:
    assert stop_score({"ctr": 0.7, "cvr": 0.6, "ctcvr": 0.8}) == ("cvr", 0.6)
    name, score = stop_score({"ctr": 0.7, "cvr": None, "ctcvr": 0.8})
    assert name == "mean"
    assert score == pytest.approx(0.75)


@pytest.mark.gpu
def test_training_on_the_gpu_keeps_the_data_there_and_exports_a_cpu_checkpoint(
    nl_data: CountryData, tmp_path: Path
) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    summary = train(
        tiny_config("mmoe", device="cuda", max_epochs=1), nl_data, tmp_path, progress=False
    )
    assert summary.device.startswith("cuda")
    # torch ships torch.jit.load without annotations.
    loaded = torch.jit.load(  # type: ignore[no-untyped-call]
        str(tmp_path / "model.pt"), map_location="cpu"
    )
    assert all(p.device.type == "cpu" for p in loaded.parameters())
    cpu_predictions = pd.read_csv(tmp_path / "predictions.csv.gz")
    assert summary.test_auc["ctr"] == pytest.approx(
        roc_auc_score(np.asarray(nl_data.test.click), cpu_predictions["ctr"])
    )
