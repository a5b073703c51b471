"""Checkpoint evaluation throughput, against two references measured in the same run.

    .venv/bin/python benchmarks/bench_checkpoint.py [--rows 20000] [--batch-size 2048]
        [--model mmoe|tiny] [--device cpu|cuda]

Measures rows/s of
  (e)  the evaluator: `run_checkpoint` end to end (fresh sandboxed process, torch import,
       archive load, batched inference over the memory-mapped test set, output checks, pipe
       transfer), and its in-child inference part alone;
  (a)  the bare model: the same TorchScript module's forward over the same rows, already in
       memory as int64/float32 tensors, at the same batch size, in this process;
  (b)  the multi-task library's evaluation loop: a per-row `Dataset` (`__getitem__` returns one
       row) and a `DataLoader` with default collation, an eager model, and per-batch `.tolist()`.
Prints the ratios: evaluator / bare (goal: overhead under 10 %) and evaluator / DataLoader loop
(goal: 5x). `--model mmoe` is the reference MMoE (SPEC defaults: embeddings 128, 8 experts
(512, 256), towers (128, 64)); `--model tiny` a small MMoE-like model, where the loop's own cost
shows. With `--device cuda` it times a full-size run (e.g. `--rows 5559301`, NL's test size).
"""

import argparse
import itertools
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from evaluator.checkpoint import CheckpointRun, Limits, run_checkpoint
from evaluator.data.prepare import prepare_csv
from evaluator.data.prepared import PreparedData
from evaluator.data.synth import write_synthetic
from evaluator.schema import N_CATEGORICAL, N_NUMERICAL


def _mlp(sizes: list[int], dropout: float = 0.2) -> nn.Sequential:
    layers: list[nn.Module] = []
    for fan_in, fan_out in itertools.pairwise(sizes):
        layers += [
            nn.Linear(fan_in, fan_out),
            nn.BatchNorm1d(fan_out),
            nn.ReLU(),
            nn.Dropout(dropout),
        ]
    return nn.Sequential(*layers)


class MMoE(nn.Module):
    """The multi-task library's MMoE layout (SPEC "Reference baseline settings")."""

    offsets: torch.Tensor
    max_index: torch.Tensor

    def __init__(
        self,
        field_dims: list[int],
        embed_dim: int = 128,
        experts: int = 8,
        expert_dims: tuple[int, ...] = (512, 256),
        tower_dims: tuple[int, ...] = (128, 64),
        tasks: int = 2,
    ) -> None:
        super().__init__()
        self.embedding = nn.Embedding(sum(field_dims), embed_dim)
        offsets = np.concatenate([[0], np.cumsum(field_dims)[:-1]])
        self.register_buffer("offsets", torch.as_tensor(offsets, dtype=torch.int64))
        self.register_buffer("max_index", torch.as_tensor(field_dims, dtype=torch.int64) - 1)
        self.numerical = nn.Linear(N_NUMERICAL, embed_dim)
        width = (N_CATEGORICAL + 1) * embed_dim
        self.experts = nn.ModuleList([_mlp([width, *expert_dims]) for _ in range(experts)])
        self.gates = nn.ModuleList(
            [nn.Sequential(nn.Linear(width, experts), nn.Softmax(dim=1)) for _ in range(tasks)]
        )
        self.towers = nn.ModuleList(
            [
                nn.Sequential(_mlp([expert_dims[-1], *tower_dims]), nn.Linear(tower_dims[-1], 1))
                for _ in range(tasks)
            ]
        )

    def forward(self, categorical: torch.Tensor, numerical: torch.Tensor) -> list[torch.Tensor]:
        # Clamped: an index past the table must not crash evaluation (SPEC).
        index = torch.minimum(categorical.clamp_min(0), self.max_index) + self.offsets
        embedded = self.embedding(index)
        x = torch.cat([embedded, self.numerical(numerical).unsqueeze(1)], dim=1).flatten(1)
        expert_out = torch.stack([expert(x) for expert in self.experts], dim=1)
        results: list[torch.Tensor] = []
        for gate, tower in zip(self.gates, self.towers, strict=True):
            mixed = torch.bmm(gate(x).unsqueeze(1), expert_out).squeeze(1)
            results.append(torch.sigmoid(tower(mixed).squeeze(1)))
        return results


class RowDataset(Dataset[tuple[np.ndarray, np.ndarray, np.ndarray]]):
    """The library's AliExpressDataset shape: one row per `__getitem__`."""

    def __init__(self, data: PreparedData) -> None:
        self.categorical = np.asarray(data.categorical, dtype=np.int64)
        self.numerical = np.array(data.numerical, dtype=np.float32)
        self.labels = np.stack([data.click, data.conversion], axis=1).astype(np.float32)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.categorical[index], self.numerical[index], self.labels[index]


def _make_model(kind: str, data: PreparedData) -> nn.Module:
    field_dims = [m + 1 for m in data.meta.categorical_max]
    torch.manual_seed(0)
    if kind == "mmoe":
        model = MMoE(field_dims)
    else:
        model = MMoE(field_dims, embed_dim=8, experts=2, expert_dims=(16,), tower_dims=(8,))
    return model.eval()


def _bare(model: Any, data: PreparedData, batch: int, device: torch.device) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one pass over the rows."""
    categorical = torch.from_numpy(np.asarray(data.categorical, dtype=np.int64)).to(device)
    numerical = torch.from_numpy(np.array(data.numerical)).to(device)
    n = categorical.shape[0]
    with torch.inference_mode():
        # TorchScript profiles the first call and optimises on the next ones: time the steady
        # state, which is what "the bare model's forward" means here.
        for _ in range(3):
            model(categorical[:batch], numerical[:batch])
        _sync(device)
        start, cpu_start = time.perf_counter(), time.process_time()
        for i in range(0, n, batch):
            model(categorical[i : i + batch], numerical[i : i + batch])
        _sync(device)
    return time.perf_counter() - start, time.process_time() - cpu_start


def _dataloader_loop(model: nn.Module, data: PreparedData, batch: int, workers: int) -> float:
    loader = DataLoader(RowDataset(data), batch_size=batch, num_workers=workers)
    predicts: list[list[float]] = [[], []]
    labels: list[list[float]] = [[], []]
    start = time.perf_counter()
    with torch.no_grad():
        for categorical, numerical, label in loader:
            outputs = model(categorical, numerical)
            for task in range(2):
                labels[task].extend(label[:, task].tolist())
                predicts[task].extend(outputs[task].tolist())
    return time.perf_counter() - start


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--model", choices=["mmoe", "tiny"], default="mmoe")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers")
    parser.add_argument("--skip-dataloader", action="store_true")
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs")
    parser.add_argument(
        "--threads", type=int, default=0, help="torch threads everywhere (0: every core)"
    )
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    device = torch.device(args.device)
    torch.set_num_threads(args.threads or len(os.sched_getaffinity(0)))

    with tempfile.TemporaryDirectory(prefix="bench-checkpoint-") as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        write_synthetic(root / "csv", ["NL"], train_rows=0, test_rows=args.rows, seed=0)
        prepare_csv(root / "csv" / "AliExpress_NL" / "test.csv", root / "prepared")
        data = PreparedData.open(root / "prepared")
        print(
            f"prepared {data.n_rows} rows in {time.perf_counter() - start:.1f} s", file=sys.stderr
        )

        eager = _make_model(args.model, data)
        scripted = torch.jit.script(eager)
        archive = root / "model.pt"
        torch.jit.save(scripted, str(archive))
        loaded = torch.jit.load(str(archive), map_location=device)  # type: ignore[no-untyped-call]
        loaded.eval()

        # The machine may be shared: each figure is the best of --repeats, interleaved.
        runs: list[CheckpointRun] = []
        bare: list[tuple[float, float]] = []
        loops: list[float] = []
        for _ in range(args.repeats):
            runs.append(
                run_checkpoint(
                    archive,
                    root / "prepared",
                    "ctr,cvr",
                    device=args.device,
                    batch_size=args.batch_size,
                    threads=args.threads,
                    limits=Limits(wall_time_s=3600, memory_bytes=64 << 30),
                )
            )
            bare.append(_bare(loaded, data, args.batch_size, device))
            if not args.skip_dataloader:
                loops.append(_dataloader_loop(eager, data, args.batch_size, args.workers))
        run = min(runs, key=lambda r: r.duration_s)
        inference_s = min(r.inference_s for r in runs)
        bare_s = min(wall for wall, _ in bare)
        bare_cpu_s = min(cpu for _, cpu in bare)
        evaluator_cpu_s = min(r.cpu_s for r in runs)
        loop_s = min(loops) if loops else None

    n = data.n_rows
    result: dict[str, Any] = {
        "rows": n,
        "model": args.model,
        "batch_size": args.batch_size,
        "device": run.device,
        "torch": run.torch_version,
        "evaluator_end_to_end_s": round(run.duration_s, 3),
        "evaluator_load_s": round(run.load_s, 3),
        "evaluator_inference_s": round(inference_s, 3),
        "bare_forward_s": round(bare_s, 3),
        "evaluator_rows_per_s": round(n / run.duration_s),
        "evaluator_inference_rows_per_s": round(n / inference_s),
        "bare_rows_per_s": round(n / bare_s),
        "overhead_end_to_end": round(run.duration_s / bare_s - 1, 4),
        "evaluator_cpu_s": round(evaluator_cpu_s, 3),
        "bare_forward_cpu_s": round(bare_cpu_s, 3),
        "cpu_overhead_end_to_end": round(evaluator_cpu_s / bare_cpu_s - 1, 4),
        "overhead_inference": round(inference_s / bare_s - 1, 4),
        "repeats": args.repeats,
        "load_average_1min": os.getloadavg()[0],
    }
    if loop_s is not None:
        result["dataloader_loop_s"] = round(loop_s, 3)
        result["dataloader_rows_per_s"] = round(n / loop_s)
        result["speedup_vs_dataloader_end_to_end"] = round(loop_s / run.duration_s, 2)
        result["speedup_vs_dataloader_inference"] = round(loop_s / inference_s, 2)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
