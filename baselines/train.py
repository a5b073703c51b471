"""Training one baseline on one country: tensorised batches, validation carved from train, early
stopping on validation CVR AUC, export of the best epoch as TorchScript plus its predictions.

A run folder holds:
    config.json          the TrainConfig
    metrics.jsonl        one line per epoch: train loss, validation AUCs, samples/s
    state_dict.pt        the best epoch's weights (for further work in Python)
    model.pt             the best epoch as a TorchScript archive (the checkpoint contract)
    predictions.csv.gz   the checkpoint's test predictions, `row_id,<outputs>`
    summary.json         outputs, best epoch, validation and test AUCs, timings
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from sklearn.metrics import roc_auc_score
from tqdm import tqdm

from baselines.config import TrainConfig
from baselines.data import CountryData, Tensors, validation_mask
from baselines.export import export_torchscript, predict, write_predictions
from baselines.losses import multitask_loss
from baselines.models import OUTPUTS, build_model
from baselines.models.layers import Tower
from evaluator.schema import TASKS
from evaluator.tasks import derive_outputs, task_rows

log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
STATE_FILE = "state_dict.pt"
CHECKPOINT_FILE = "model.pt"
PREDICTIONS_FILE = "predictions.csv.gz"
SUMMARY_FILE = "summary.json"

Aucs = dict[str, float | None]


@dataclass(frozen=True)
class EpochMetrics:
    epoch: int
    train_loss: float
    val_auc: Aucs
    samples_per_s: float
    seconds: float


@dataclass(frozen=True)
class RunSummary:
    model: str
    country: str
    outputs: tuple[str, ...]
    best_epoch: int
    epochs_run: int
    stop_metric: str
    val_auc: Aucs
    test_auc: Aucs
    train_rows: int
    val_rows: int
    test_rows: int
    train_seconds: float
    samples_per_s: float
    device: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _auc(labels: npt.NDArray[Any], scores: npt.NDArray[Any]) -> float | None:
    """None where the labels hold one class only: the AUC is undefined there, not 0.5."""
    if len(labels) == 0 or labels.min() == labels.max():
        return None
    return float(roc_auc_score(labels, scores))


def task_aucs(
    predictions: npt.NDArray[np.float32],
    names: tuple[str, ...],
    click: npt.NDArray[Any],
    conversion: npt.NDArray[Any],
) -> Aucs:
    """The three AUCs as SPEC "Metrics" defines them (CVR on clicked rows only); a missing
    column is derived as the evaluator derives it."""
    columns = {name: predictions[:, i].astype(np.float64) for i, name in enumerate(names)}
    outputs = dict(zip(TASKS, derive_outputs(columns["ctr"], cvr=columns.get("cvr"),
                                             ctcvr=columns.get("ctcvr")), strict=True))
    aucs: Aucs = {}
    for task in TASKS:
        rows = task_rows(task, click, conversion)
        aucs[task] = _auc(rows.labels, rows.take(outputs[task]))
    return aucs


def stop_score(aucs: Aucs) -> tuple[str, float]:
    """Validation CVR AUC; where the validation rows hold too few purchases for it, the mean of
    the AUCs that exist (named, so the run says what it stopped on)."""
    cvr = aucs["cvr"]
    if cvr is not None:
        return "cvr", cvr
    defined = [v for v in aucs.values() if v is not None]
    return "mean", (sum(defined) / len(defined)) if defined else -math.inf


def set_priors(model: torch.nn.Module, labels: npt.NDArray[np.float32]) -> None:
    """Point every tower at its label's base rate in the training rows (click, conversion)."""
    clicks, conversions = float(labels[:, 0].sum()), float(labels[:, 1].sum())
    n = max(len(labels), 1)
    rates = {"ctr": clicks / n, "ctcvr": conversions / n, "cvr": conversions / max(clicks, 1.0)}
    for module in model.modules():
        if isinstance(module, Tower):
            module.set_prior(rates[module.task])


def _evaluate(
    model: torch.nn.Module, tensors: Tensors, names: tuple[str, ...], batch_size: int
) -> Aucs:
    model.eval()
    parts = []
    with torch.inference_mode():
        for categorical, numerical, _ in tensors.batches(batch_size):
            parts.append(model(categorical, numerical).float().cpu())
    model.train()
    labels = tensors.labels.cpu().numpy()
    return task_aucs(torch.cat(parts).numpy(), names, labels[:, 0], labels[:, 1])


def train(
    cfg: TrainConfig,
    data: CountryData,
    out: Path,
    progress: bool = True,
    threads: int | None = None,
) -> RunSummary:
    """Train, early-stop, export; everything lands in the run folder `out`. `threads` (CPU only)
    defaults to every core; fewer is faster when other processes share the cores."""
    out.mkdir(parents=True, exist_ok=True)
    (out / CONFIG_FILE).write_text(cfg.to_json() + "\n")
    device = resolve_device(cfg.device)
    if device.type == "cpu":
        torch.set_num_threads(threads or os.cpu_count() or 1)
    torch.manual_seed(cfg.seed)
    names = OUTPUTS[cfg.model]
    calibration = cfg.aitm_calibration if cfg.model == "aitm" else 0.0

    held_out = validation_mask(data.train.search_id, cfg.val_fraction, cfg.seed)
    train_set = Tensors.from_prepared(data.train, ~held_out, device)
    val_set = Tensors.from_prepared(data.train, held_out, device)
    if len(train_set) < 2 or len(val_set) == 0:
        raise ValueError(
            f"{data.country}: {len(train_set)} training and {len(val_set)} validation rows after "
            f"holding out {cfg.val_fraction:.0%} of search pages; need more training data"
        )

    model = build_model(cfg.model, data.field_dims, cfg.arch)
    if cfg.prior_init:
        set_priors(model, train_set.labels.cpu().numpy())
    model = model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    eval_batch = max(cfg.batch_size, 16_384)

    best: tuple[float, int, Aucs, dict[str, torch.Tensor], str] | None = None
    stale = 0
    train_seconds = 0.0
    samples = 0
    epoch = 0
    metrics_file = (out / METRICS_FILE).open("w")
    try:
        for epoch in range(1, cfg.max_epochs + 1):
            model.train()
            started = time.perf_counter()
            loss_sum = torch.zeros((), device=device)
            seen = 0
            n_batches = math.ceil(len(train_set) / cfg.batch_size)
            bar = tqdm(
                total=n_batches,
                desc=f"{cfg.model} {cfg.country} epoch {epoch}",
                unit="batch",
                disable=not progress,
                leave=False,
            )
            for step, (categorical, numerical, labels) in enumerate(
                train_set.batches(cfg.batch_size, generator)
            ):
                outputs = model(categorical, numerical)
                loss = multitask_loss(outputs, labels[:, 0], labels[:, 1], names, calibration)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()  # type: ignore[no-untyped-call]
                optimizer.step()
                loss_sum += loss.detach() * len(labels)
                seen += len(labels)
                bar.update()
                if step % 20 == 0:  # .item() waits for the GPU: not every step
                    elapsed = time.perf_counter() - started
                    bar.set_postfix(loss=f"{loss.item():.4f}", samples_s=f"{seen / elapsed:,.0f}")
            bar.close()
            seconds = time.perf_counter() - started
            train_seconds += seconds
            samples += seen
            val_auc = _evaluate(model, val_set, names, eval_batch)
            record = EpochMetrics(
                epoch=epoch,
                train_loss=float(loss_sum.item()) / max(seen, 1),
                val_auc=val_auc,
                samples_per_s=seen / seconds,
                seconds=seconds,
            )
            metrics_file.write(json.dumps(asdict(record)) + "\n")
            metrics_file.flush()
            log.info(
                "%s %s epoch %d: loss %.5f, val AUC %s, %.0f samples/s",
                cfg.model,
                cfg.country,
                epoch,
                record.train_loss,
                {k: None if v is None else round(v, 4) for k, v in val_auc.items()},
                record.samples_per_s,
            )
            stop_metric, score = stop_score(val_auc)
            if best is None or score > best[0]:
                state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
                best = (score, epoch, val_auc, state, stop_metric)
                stale = 0
            else:
                stale += 1
                if stale >= cfg.patience:
                    break
    finally:
        metrics_file.close()
    assert best is not None  # max_epochs >= 1 guarantees one epoch
    _, best_epoch, best_val, best_state, best_metric = best

    model.load_state_dict(best_state)
    torch.save(best_state, out / STATE_FILE)
    n_sample = min(len(val_set), 256)
    sample = (val_set.categorical[:n_sample].long(), val_set.numerical[:n_sample])
    scripted = export_torchscript(model, out / CHECKPOINT_FILE, sample)
    test_predictions = predict(scripted, data.test, device=device)
    write_predictions(out / PREDICTIONS_FILE, names, test_predictions)
    test_auc = task_aucs(
        test_predictions, names, np.asarray(data.test.click), np.asarray(data.test.conversion)
    )
    summary = RunSummary(
        model=cfg.model,
        country=cfg.country,
        outputs=names,
        best_epoch=best_epoch,
        epochs_run=epoch,
        stop_metric=best_metric,
        val_auc=best_val,
        test_auc=test_auc,
        train_rows=len(train_set),
        val_rows=len(val_set),
        test_rows=data.test.n_rows,
        train_seconds=train_seconds,
        samples_per_s=samples / train_seconds if train_seconds else 0.0,
        device=str(device),
    )
    (out / SUMMARY_FILE).write_text(summary.to_json() + "\n")
    return summary


__all__ = ["RunSummary", "task_aucs", "train"]
