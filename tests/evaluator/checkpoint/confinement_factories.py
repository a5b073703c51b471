"""Hostile models for the operator allow-list and the failure reasons, built by the tests."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn


class ReinterpretsMemory(nn.Module):
    """The attack of issue 14: a view built by `inductor::_reinterpret_tensor` with no bounds
    check, reading (and writing) far past the end of the model's input."""

    def __init__(self, offset: int = 1 << 20) -> None:
        super().__init__()
        self.offset = offset

    def forward(self, categorical: torch.Tensor, numerical: torch.Tensor) -> torch.Tensor:
        view = torch.ops.inductor._reinterpret_tensor(
            numerical, [numerical.shape[0], 2], [1, 1], self.offset
        )
        view.fill_(0.5)
        return torch.sigmoid(view)


@torch.jit.script
def _strided_helper(x: torch.Tensor, n: int) -> torch.Tensor:
    return torch.as_strided(x, [n, 2], [1, 1], 1000)


class _Inner(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(2):
            if bool(x.sum() > -1e9):
                x = _strided_helper(x, x.shape[0])
        return x


class HidesAnUnsafeViewDeep(nn.Module):
    """`aten::as_strided` with a storage offset, in a free function called from a loop inside an
    `if` of a submodule's forward."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = _Inner()

    def forward(self, categorical: torch.Tensor, numerical: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.inner(numerical))


@torch.jit.script
class _SortKey:
    """Its `__lt__`, which `list.sort` calls with no node of its own in the caller's graph,
    builds an unchecked view."""

    def __init__(self, x: torch.Tensor) -> None:
        self.x = x

    def __lt__(self, other: _SortKey) -> bool:
        torch.ops.inductor._reinterpret_tensor(self.x, [2], [1], 1 << 20).fill_(1.0)
        return True


class SortsObjects(nn.Module):
    def forward(self, categorical: torch.Tensor, numerical: torch.Tensor) -> torch.Tensor:
        keys = [_SortKey(numerical), _SortKey(numerical)]
        keys.sort()
        return torch.sigmoid(keys[0].x[:, :2])


@torch.jit.script
class _Context:
    """Its `__enter__` runs from prim::Enter, outside any graph the check walks."""

    def __init__(self, x: torch.Tensor) -> None:
        self.x = x

    def __enter__(self) -> None:
        torch.ops.inductor._reinterpret_tensor(self.x, [2], [1], 1 << 20).fill_(1.0)

    def __exit__(self, kind: Any, value: Any, traceback: Any) -> None:
        pass


class EntersAContext(nn.Module):
    def forward(self, categorical: torch.Tensor, numerical: torch.Tensor) -> torch.Tensor:
        with _Context(numerical):
            out = torch.sigmoid(numerical[:, :2])
        return out


class UnusedMethodReadsFiles(nn.Module):
    """forward is plain; another method, never called by the evaluator, reads a file."""

    @torch.jit.export
    def leak(self) -> torch.Tensor:
        return torch.from_file("/etc/passwd", size=8, dtype=torch.uint8)

    def forward(self, categorical: torch.Tensor, numerical: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(numerical[:, :2])


class UninitialisedMemory(nn.Module):
    def forward(self, categorical: torch.Tensor, numerical: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(torch.empty(numerical.shape[0], 2))


class SparseBuffer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        indices = torch.tensor([[0, 1], [1, 0]])
        self.register_buffer("table", torch.sparse_coo_tensor(indices, torch.ones(2), (2, 2)))

    def forward(self, categorical: torch.Tensor, numerical: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(numerical[:, :2])


class SparseInAList(nn.Module):
    """A sparse tensor in a list attribute (not a parameter or buffer), fed to a plain `add`."""

    def __init__(self) -> None:
        super().__init__()
        indices = torch.tensor([[0, 1], [1, 0]])
        self.tables: list[torch.Tensor] = [
            torch.sparse_coo_tensor(indices, torch.ones(2), (2, 2))
        ]

    def forward(self, categorical: torch.Tensor, numerical: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(numerical[:2, :2] + self.tables[0])


class LeaksAFileOnLoad(nn.Module):
    """`__setstate__` (run by torch.jit.load, before any check) reads a file and raises its
    bytes as its message: a file's contents or its existence, read off the failure reason."""

    def __init__(self, target: str) -> None:
        super().__init__()
        self.target = target

    @torch.jit.export
    def __getstate__(self) -> tuple[str, bool]:
        return (self.target, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[str, bool]) -> None:
        self.target = state[0]
        self.training = state[1]
        data = torch.from_file(self.target, size=64, dtype=torch.uint8)
        text = ""
        for i in range(data.numel()):
            text += chr(int(data[i]))
        raise RuntimeError(text.replace("\n", " "))

    def forward(self, categorical: torch.Tensor, numerical: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(numerical[:, :2])


class RaisesOnLoad(nn.Module):
    """`__setstate__` raises: the reason shows it ran, in the child."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.ones(2)

    @torch.jit.export
    def __getstate__(self) -> tuple[torch.Tensor, bool]:
        return (self.w, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[torch.Tensor, bool]) -> None:
        self.w = state[0]
        self.training = state[1]
        raise ValueError("setstate ran while loading")

    def forward(self, categorical: torch.Tensor, numerical: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(numerical[:, :2] * self.w)


class _Layer(nn.Module):
    def __init__(self, inner: nn.Module | None) -> None:
        super().__init__()
        self.inner = inner if inner is not None else nn.Embedding(10, 2)
        self.leaf = inner is None

    def forward(self, categorical: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.inner(categorical)
        return out


class UnseenCategoryDeep(nn.Module):
    """An embedding lookup of an index past its table, 40 calls deep: TorchScript's error is a
    long traceback whose cause ("index out of range in self") is its last line."""

    def __init__(self, depth: int = 40) -> None:
        super().__init__()
        layer: nn.Module | None = None
        for _ in range(depth):
            layer = _Layer(layer)
        assert layer is not None
        self.layers = layer

    def forward(self, categorical: torch.Tensor, numerical: torch.Tensor) -> torch.Tensor:
        out = self.layers(categorical[:, 0] + 1000)
        return torch.sigmoid(out)


def rewrite_code(archive: Path, out: Path, old: str, new: str) -> Path:
    """A copy of the archive with `old` replaced by `new` in its serialized code (what a
    participant can do to the zip after torch.jit.save)."""
    with zipfile.ZipFile(archive) as source, zipfile.ZipFile(out, "w") as target:
        replaced = 0
        for info in source.infolist():
            data = source.read(info)
            if "/code/" in info.filename and info.filename.endswith(".py"):
                text = data.decode()
                replaced += text.count(old)
                data = text.replace(old, new).encode()
            target.writestr(info, data)
    assert replaced, f"{old!r} not found in the archive's code"
    return out
