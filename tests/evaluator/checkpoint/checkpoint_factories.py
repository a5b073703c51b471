"""Factories for checkpoint tests: a small prepared test set, an honest MMoE-like model, and
hostile models, all built by the tests themselves."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.distributed.rpc as rpc
from torch import nn

from evaluator.data.prepare import prepare_csv
from evaluator.data.prepared import PreparedData
from evaluator.data.synth import write_synthetic
from evaluator.schema import N_CATEGORICAL, N_NUMERICAL


def make_prepared(root: Path, rows: int = 600, seed: int = 0) -> Path:
    """A prepared NL test set of `rows` synthetic rows (the real generator and preparer)."""
    write_synthetic(root / "csv", ["NL"], train_rows=0, test_rows=rows, seed=seed)
    out = root / "prepared"
    prepare_csv(root / "csv" / "AliExpress_NL" / "test.csv", out)
    return out


class TinyMMoE(nn.Module):
    """MMoE in the multi-task library's shape, shrunk: shared embedding with per-field offsets,
    numerical features as a 17th field, experts, per-task softmax gates, towers, sigmoids."""

    if TYPE_CHECKING:
        # The registered buffer, declared for mypy only: TorchScript reads class annotations
        # at runtime and cannot resolve the string `from __future__ import annotations` makes.
        offsets: torch.Tensor

    def __init__(
        self, vocab: int = 1024, dim: int = 8, experts: int = 3, hidden: int = 16, tasks: int = 2
    ) -> None:
        super().__init__()
        self.vocab = vocab
        self.embedding = nn.Embedding(vocab * N_CATEGORICAL, dim)
        self.numerical = nn.Linear(N_NUMERICAL, dim)
        width = (N_CATEGORICAL + 1) * dim
        self.experts = nn.ModuleList(
            [nn.Sequential(nn.Linear(width, hidden), nn.ReLU()) for _ in range(experts)]
        )
        self.gates = nn.ModuleList([nn.Linear(width, experts) for _ in range(tasks)])
        self.towers = nn.ModuleList([nn.Linear(hidden, 1) for _ in range(tasks)])
        self.register_buffer("offsets", torch.arange(N_CATEGORICAL) * vocab)

    def forward(self, categorical: torch.Tensor, numerical: torch.Tensor) -> list[torch.Tensor]:
        fields = categorical.clamp(0, self.vocab - 1) + self.offsets
        embedded = self.embedding(fields).flatten(1)
        x = torch.cat([embedded, self.numerical(numerical)], dim=1)
        expert_out = torch.stack([expert(x) for expert in self.experts], dim=1)
        results: list[torch.Tensor] = []
        for gate, tower in zip(self.gates, self.towers, strict=True):
            weights = torch.softmax(gate(x), dim=1).unsqueeze(1)
            mixed = torch.bmm(weights, expert_out).squeeze(1)
            results.append(torch.sigmoid(tower(mixed)).squeeze(1))
        return results


def honest_model(seed: int = 0, tasks: int = 2) -> torch.jit.ScriptModule:
    torch.manual_seed(seed)
    model = TinyMMoE(tasks=tasks)
    model.eval()
    return torch.jit.script(model)


def save(module: torch.jit.ScriptModule, path: Path) -> Path:
    torch.jit.save(module, str(path))
    return path


def reference_outputs(archive: Path, prepared: Path) -> np.ndarray:
    """The model's own outputs, computed directly in this (trusted) process: float64 [k, N]."""
    # torch ships torch.jit.load without annotations.
    model = torch.jit.load(str(archive))  # type: ignore[no-untyped-call]
    model.eval()
    data = PreparedData.open(prepared)
    with torch.inference_mode():
        out = model(
            torch.from_numpy(np.array(data.categorical)).long(),
            torch.from_numpy(np.array(data.numerical)),
        )
    return torch.stack(list(out)).double().numpy()


class WritesOnLoad(nn.Module):
    """Writes a file from `__setstate__`, i.e. while torch.jit.load runs, before forward."""

    def __init__(self, target: str) -> None:
        super().__init__()
        self.target = target
        self.w = torch.ones(2)

    @torch.jit.export
    def __getstate__(self) -> tuple[str, torch.Tensor, bool]:
        return (self.target, self.w, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[str, torch.Tensor, bool]) -> None:
        self.target = state[0]
        self.w = state[1]
        self.training = state[2]
        torch.save(self.w, self.target)

    def forward(self, categorical: torch.Tensor, numerical: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(numerical[:, :2] * self.w)


class ReadsFile(nn.Module):
    """Reads a file with torch.from_file in forward and leaks its first bytes as predictions."""

    def __init__(self, target: str) -> None:
        super().__init__()
        self.target = target

    def forward(self, categorical: torch.Tensor, numerical: torch.Tensor) -> torch.Tensor:
        data = torch.from_file(self.target, size=2, dtype=torch.uint8).float() / 255.0
        return data.unsqueeze(0).expand(numerical.shape[0], 2).contiguous()


@torch.jit.script
def _remote_add(x: torch.Tensor) -> torch.Tensor:
    return x + 1


class CallsRpc(nn.Module):
    """TorchScript's only route toward another machine: an RPC (no operator opens a socket)."""

    def forward(self, categorical: torch.Tensor, numerical: torch.Tensor) -> torch.Tensor:
        future = rpc.rpc_async("attacker", _remote_add, (numerical[:, :2],))
        return torch.sigmoid(future.wait())


class LoopsForever(nn.Module):
    def forward(self, categorical: torch.Tensor, numerical: torch.Tensor) -> torch.Tensor:
        x = numerical[:, :2]
        while bool(x.sum() > -1.0):
            x = x + 1.0
        return torch.sigmoid(x)


class AllocatesTooMuch(nn.Module):
    def forward(self, categorical: torch.Tensor, numerical: torch.Tensor) -> torch.Tensor:
        # 64 GiB of float32, far past any cap a test sets.
        big = torch.ones(16 * 1024 * 1024 * 1024)
        return torch.sigmoid(numerical[:, :2]) + big[0] * 0.0


class WrongShape(nn.Module):
    def forward(self, categorical: torch.Tensor, numerical: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(numerical[:, :1])


class NaNAtRow3(nn.Module):
    def forward(self, categorical: torch.Tensor, numerical: torch.Tensor) -> list[torch.Tensor]:
        ctr = torch.sigmoid(numerical[:, 0])
        cvr = torch.sigmoid(numerical[:, 1])
        if cvr.shape[0] > 3:
            cvr[3] = float("nan")
        return [ctr, cvr]


def script(module: nn.Module) -> torch.jit.ScriptModule:
    return torch.jit.script(module)


def truncated_copy(archive: Path, out: Path) -> Path:
    data = archive.read_bytes()
    out.write_bytes(data[: len(data) // 2])
    return out


def zip_bomb(out: Path, expanded_bytes: int = 256 << 20) -> Path:
    """A TorchScript-shaped zip whose one code entry expands ~1000-fold."""
    chunk = b"\0" * (1 << 20)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("m/data.pkl", b"x", compress_type=zipfile.ZIP_STORED)
        archive.writestr("m/constants.pkl", b"x", compress_type=zipfile.ZIP_STORED)
        with archive.open("m/code/__torch__.py", "w", force_zip64=True) as entry:
            for _ in range(expanded_bytes // len(chunk)):
                entry.write(chunk)
    return out


def archive_with_entries(out: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in entries.items():
            archive.writestr(zipfile.ZipInfo(name), data)
    return out


def scripted_bytes(module: torch.jit.ScriptModule) -> bytes:
    buffer = io.BytesIO()
    torch.jit.save(module, buffer)
    return buffer.getvalue()
