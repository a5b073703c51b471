"""TorchScript export and the prediction file, both of what the evaluator will actually run."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import torch
from torch import nn

from evaluator.data.prepared import PreparedData


class ExportError(Exception):
    """The exported archive does not reproduce the trained model."""


def export_torchscript(
    model: nn.Module, path: Path, sample: tuple[torch.Tensor, torch.Tensor]
) -> torch.jit.ScriptModule:
    """Script a CPU copy of `model` in eval mode, save it, load it back and check that the loaded
    archive gives the same outputs on `sample` (categorical int64, numerical float32)."""
    cpu_model = copy.deepcopy(model).cpu().eval()
    scripted = torch.jit.script(cpu_model)
    torch.jit.save(scripted, str(path))
    loaded: torch.jit.ScriptModule = torch.jit.load(  # type: ignore[no-untyped-call]
        str(path), map_location="cpu"
    )
    loaded.eval()
    categorical, numerical = (t.cpu() for t in sample)
    with torch.inference_mode():
        expected = cpu_model(categorical.long(), numerical.float())
        actual = loaded(categorical.long(), numerical.float())
    if not torch.equal(expected, actual):
        raise ExportError(
            f"{path}: the saved archive differs from the model "
            f"(max difference {float((expected - actual).abs().max()):.3g})"
        )
    return loaded


def predict(
    model: nn.Module | torch.jit.ScriptModule,
    data: PreparedData,
    batch_size: int = 65_536,
    device: torch.device | str = "cpu",
) -> npt.NDArray[np.float32]:
    """Probabilities [N, K] for every row of a prepared folder, called as the evaluator calls a
    checkpoint: eval mode, inference mode, int64 categoricals, float32 numericals."""
    model = model.to(device).eval()
    parts: list[npt.NDArray[np.float32]] = []
    with torch.inference_mode():
        for start in range(0, data.n_rows, batch_size):
            end = start + batch_size
            categorical = torch.from_numpy(np.array(data.categorical[start:end], np.int64))
            numerical = torch.from_numpy(np.array(data.numerical[start:end], np.float32))
            out = model(categorical.to(device), numerical.to(device))
            parts.append(out.float().cpu().numpy())
    return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)


def write_predictions(
    path: Path, names: tuple[str, ...], predictions: npt.NDArray[np.float32]
) -> None:
    """`row_id,<names...>` (SPEC "Prediction file"); gzip when the name ends in .gz.
    Nine significant digits keep every float32 distinct, so the file ranks rows exactly as the
    checkpoint does."""
    if predictions.ndim != 2 or predictions.shape[1] != len(names):
        raise ValueError(f"predictions of shape {predictions.shape} do not match columns {names}")
    frame = pd.DataFrame(predictions.astype(np.float64), columns=list(names))
    frame.insert(0, "row_id", np.arange(len(frame), dtype=np.int64))
    compression = {"method": "gzip", "compresslevel": 1} if path.suffix == ".gz" else None
    frame.to_csv(path, index=False, float_format="%.9g", compression=compression)
