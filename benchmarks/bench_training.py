"""Training throughput of the baselines' tensorised loader against the multi-task library's
per-row loop, in one run, on the same model, batch size, data and device.

    .venv/bin/python benchmarks/bench_training.py [--model mmoe] [--preset demo|spec]
        [--rows 200000] [--batch-size 2048] [--batches 20] [--rounds 3] [--workers 0] [--threads N]
        [--device cpu|cuda] [--epoch]

(a) this package: the prepared arrays become tensors once (`baselines.data.Tensors`), each batch
    is one gather by a shuffled index, then forward, loss, backward, Adam step;
(b) the reference: a `Dataset` whose `__getitem__` returns one row from in-memory numpy arrays (as
    the multi-task library's AliExpressDataset) and a shuffling `DataLoader` with default
    collation and `--workers` worker processes, then the same training step.
Rounds alternate (a) and (b); each figure is the median over rounds. Prints samples/s of both,
of the loaders alone (no model), and the ratios (goal: (a)/(b) >= 3).
`--epoch` also trains one full epoch with (a) alone and prints its samples/s (the GPU figure).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from baselines.config import DEMO_ARCH, ModelConfig, ModelName, parse_model
from baselines.data import Tensors
from baselines.losses import multitask_loss
from baselines.models import OUTPUTS, build_model
from evaluator.data.prepare import prepare_csv
from evaluator.data.prepared import PreparedData
from evaluator.data.synth import write_synthetic

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


class RowDataset(Dataset[tuple[np.ndarray, np.ndarray, np.ndarray]]):
    """The multi-task library's AliExpressDataset: whole arrays in memory, one row per call."""

    def __init__(self, data: PreparedData) -> None:
        self.categorical = np.asarray(data.categorical, dtype=np.int64)
        self.numerical = np.asarray(data.numerical, dtype=np.float32)
        self.labels = np.stack([data.click, data.conversion], 1).astype(np.float32)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.categorical[index], self.numerical[index], self.labels[index]


def _make_data(rows: int, folder: Path) -> PreparedData:
    write_synthetic(folder, ["NL"], train_rows=rows, test_rows=0, seed=0)
    prepare_csv(folder / "AliExpress_NL" / "train.csv", folder / "prepared")
    return PreparedData.open(folder / "prepared")


def _time_training(
    name: ModelName,
    arch: ModelConfig,
    field_dims: list[int],
    batches: Iterable[Batch],
    n_batches: int,
    device: torch.device,
) -> float:
    """Samples/s over `n_batches` training steps, after one warm-up step."""
    torch.manual_seed(0)
    model = build_model(name, field_dims, arch).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-6)
    names = OUTPUTS[name]
    seen = 0
    started = 0.0
    iterator: Iterator[Batch] = iter(batches)
    for step in range(n_batches + 1):
        if step == 1:
            _sync(device)
            started = time.perf_counter()
        categorical, numerical, labels = next(iterator)
        categorical, numerical, labels = (
            categorical.to(device, non_blocking=True),
            numerical.to(device, non_blocking=True),
            labels.to(device, non_blocking=True),
        )
        loss = multitask_loss(model(categorical, numerical), labels[:, 0], labels[:, 1], names)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        if step >= 1:
            seen += len(labels)
    _sync(device)
    return seen / (time.perf_counter() - started)


def _time_loader(batches: Iterable[Batch], n_batches: int) -> float:
    iterator = iter(batches)
    next(iterator)
    started = time.perf_counter()
    seen = sum(len(next(iterator)[2]) for _ in range(n_batches))
    return seen / (time.perf_counter() - started)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="mmoe")
    parser.add_argument("--preset", choices=["demo", "spec"], default="demo")
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epoch", action="store_true")
    args = parser.parse_args(argv)
    name = parse_model(args.model)
    arch = DEMO_ARCH if args.preset == "demo" else ModelConfig()
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    needed = args.batch_size * (args.batches + 1)
    if args.rows < needed:
        sys.exit(f"--rows must be at least batch-size x (batches + 1) = {needed}")

    with tempfile.TemporaryDirectory() as tmp:
        data = _make_data(args.rows, Path(tmp))
        field_dims = [m + 1 for m in data.meta.categorical_max]
        started = time.perf_counter()
        tensors = Tensors.from_prepared(data, device=device)
        to_tensors_s = time.perf_counter() - started
        generator = torch.Generator(device=device).manual_seed(0)
        dataset = RowDataset(data)

        def row_loader() -> DataLoader[Any]:
            return DataLoader(
                dataset,
                batch_size=args.batch_size,
                shuffle=True,
                num_workers=args.workers,
                pin_memory=device.type == "cuda",
            )

        result: dict[str, Any] = {
            "model": name,
            "preset": args.preset,
            "device": str(device),
            "threads": args.threads,
            "rows": args.rows,
            "batch_size": args.batch_size,
            "batches": args.batches,
            "workers": args.workers,
            "rounds": args.rounds,
            "to_tensors_s": round(to_tensors_s, 3),
        }
        # Rounds alternate (a) and (b) and keep each side's median, so that load from other
        # processes on a shared machine hits both sides alike.
        ours_loader, rows_loader, ours, rows = [], [], [], []
        for _ in range(args.rounds):
            ours_loader.append(
                _time_loader(tensors.batches(args.batch_size, generator), args.batches)
            )
            rows_loader.append(_time_loader(row_loader(), args.batches))
            ours.append(
                _time_training(
                    name,
                    arch,
                    field_dims,
                    tensors.batches(args.batch_size, generator),
                    args.batches,
                    device,
                )
            )
            rows.append(_time_training(name, arch, field_dims, row_loader(), args.batches, device))
        median = statistics.median
        result.update(
            {
                "train_samples_per_s": round(median(ours)),
                "reference_train_samples_per_s": round(median(rows)),
                "train_ratio": round(median(ours) / median(rows), 2),
                "loader_samples_per_s": round(median(ours_loader)),
                "reference_loader_samples_per_s": round(median(rows_loader)),
                "loader_ratio": round(median(ours_loader) / median(rows_loader), 1),
            }
        )
        if args.epoch:
            n = len(tensors) // args.batch_size - 1
            result["epoch_samples_per_s"] = round(
                _time_training(
                    name, arch, field_dims, tensors.batches(args.batch_size, generator), n, device
                )
            )
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
