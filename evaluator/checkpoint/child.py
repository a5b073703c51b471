"""Entry point of the sandboxed child: `python -m evaluator.checkpoint.child`.

It reads its job as JSON on stdin, opens the archive and the test set's feature arrays (never
the labels), seals itself in (sandbox.py), loads the participant's TorchScript, runs it and writes
the result to the pipe named in the job:

    one JSON line   {"status": "ok", "n_rows": N, "n_outputs": k, ...}
    then            N * k little-endian float64, output by output

or one JSON line `{"status": "failed", "category": "...", ...}` whose pieces the parent turns
into one of the fixed reasons of `reasons.py`. Nothing is ever written to a file.
"""

from __future__ import annotations

import io
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from evaluator.checkpoint import reasons, sandbox
from evaluator.checkpoint.allowlist import OperatorRefused, check_loaded_model


class JobFailed(Exception):
    """Ends the job; `report` is what the parent composes the participant's reason from
    (`reasons.compose`): a category and its pieces, never free text of the worker's."""

    def __init__(self, report: dict[str, Any]) -> None:
        super().__init__(report.get("category", "failed"))
        self.report = report


def main() -> int:
    job: dict[str, Any] = json.loads(sys.stdin.buffer.read(1 << 20))
    result = os.fdopen(int(job["result_fd"]), "wb", buffering=0)
    try:
        header, payload = run(job)
    except JobFailed as exc:
        _write(result, {"status": "failed", **exc.report}, b"")
        return 3
    except sandbox.SandboxError as exc:
        # The whole text goes to the worker's log (the output tail); the reason says only that
        # the evaluator, not the checkpoint, failed.
        sys.stderr.write(f"sandbox: {exc}\n")
        report = {"category": "evaluator", "detail": "the sandbox could not be set up"}
        _write(result, {"status": "failed", **report, "sandbox": True}, b"")
        return 4
    except Exception:
        # Anything else went wrong in the evaluator's own code, not in the participant's.
        traceback.print_exc()
        report = {"category": "evaluator", "detail": "internal error in the evaluator"}
        _write(result, {"status": "failed", **report, "sandbox": True}, b"")
        return 5
    _write(result, header, payload)
    return 0


def _write(result: Any, header: dict[str, Any], payload: bytes | memoryview) -> None:
    for data in (json.dumps(header).encode() + b"\n", payload):
        view = memoryview(data)
        while view:
            written = result.write(view)
            view = view[written:]
    result.close()


def run(job: dict[str, Any]) -> tuple[dict[str, Any], bytes | memoryview]:
    policy = sandbox.SandboxPolicy.from_json(job["policy"])
    names = tuple(str(name) for name in job["outputs"])
    n_rows = int(job["n_rows"])
    device_name = str(job["device"])

    # Everything the run reads is opened now, before the filesystem is sealed.
    archive = _read_archive(Path(job["archive"]), int(job["max_archive_bytes"]))
    prepared = Path(job["prepared_dir"])
    categorical = np.load(prepared / "categorical.npy", mmap_mode="r")
    numerical = np.load(prepared / "numerical.npy", mmap_mode="r")
    if categorical.shape[0] != n_rows or numerical.shape[0] != n_rows:
        raise sandbox.SandboxError(
            f"test set has {categorical.shape[0]} rows, expected {n_rows}")

    # The test set's folder holds the labels, and the archive's folder other teams' uploads:
    # both are hidden too, so that even without Landlock the model cannot read them by path;
    # so is the folder holding both (the service's data folder: its database, sockets...).
    hidden = (*policy.hidden_paths, str(prepared), str(Path(job["archive"]).parent))
    if policy.hidden_paths:
        hidden += _data_root(prepared, Path(job["archive"]))
    measures = sandbox.isolate_namespaces(hidden, keep_visible=policy.read_paths)
    # An empty temporary folder of the child's own, where /tmp could be covered.
    sandbox.use_private_tmp(measures)
    read_paths = policy.read_paths
    device_paths = policy.device_paths
    wants_gpu = device_name != "cpu" and os.path.exists("/dev/nvidiactl")
    if wants_gpu:
        # The CUDA driver reads and opens much at initialisation (/proc, /sys, devices, its
        # libraries): initialise it in the namespaces but before Landlock. Its threads run
        # driver code only; torch's own threads start later and inherit everything.
        import torch

        device = _init_device(torch, device_name, policy)
        gpu_reads, gpu_devices = sandbox.gpu_paths()
        read_paths += gpu_reads
        device_paths += gpu_devices
    landlock = sandbox.restrict_filesystem(read_paths, device_paths)
    if landlock:
        measures.append(landlock)

    import torch

    from evaluator.checkpoint import inference

    if not wants_gpu:
        if device_name.startswith("cuda"):
            raise sandbox.SandboxError(f"device {device_name} asked for, but no GPU is visible")
        device = torch.device("cpu")
    torch.set_num_threads(1)
    _warm_up(torch, inference, categorical, numerical, names, device)

    sandbox.apply_limits(policy.limits)
    measures.append("rlimits")
    measures.append(sandbox.drop_privileges(policy.uid, policy.gid))
    sandbox.die_with_parent(int(job["parent_pid"]))
    torch.set_num_threads(int(job.get("threads") or 0) or sandbox.available_cores())

    # Every import and file the run needs is done: from here on no file can be read, so what
    # the participant's code runs (its `__setstate__` while loading, then forward) cannot read
    # even what the first Landlock layer allows (the venv's files).
    sealed = sandbox.seal_reads()
    if sealed:
        measures.append(sealed)

    load_start = time.monotonic()
    try:
        model = torch.jit.load(  # type: ignore[no-untyped-call]
            io.BytesIO(archive), map_location=device
        )
        model.eval()
    except Exception as exc:
        raise JobFailed(_model_failure(exc, "load_error")) from None
    del archive
    if job.get("refuse_forbidden_ops", True):
        try:
            check_loaded_model(torch, model)
        except OperatorRefused as exc:
            raise JobFailed({"category": "operator", "detail": str(exc)}) from None
    load_s = time.monotonic() - load_start
    start = time.monotonic()
    try:
        # Batch size 0: chosen by measurement on the first rows (inference.BatchPlan).
        out, timing = inference.predict_timed(
            model, categorical, numerical, names, device, int(job["batch_size"])
        )
    except inference.OutputError as exc:
        raise JobFailed({"category": "bad_output", "detail": str(exc)}) from None
    except Exception as exc:
        raise JobFailed(_model_failure(exc, "model_error")) from None
    inference_s = time.monotonic() - start
    header = {
        "status": "ok",
        "n_rows": n_rows,
        "n_outputs": len(names),
        "torch_version": torch.__version__,
        "device": _device_label(torch, device),
        "load_s": load_s,
        "inference_s": inference_s,
        "warmup_s": timing.warmup_s,
        "forward_s": timing.forward_s,
        "batch_size": timing.batch_size,
        "calibration": [list(item) for item in timing.calibration],
        "threads": torch.get_num_threads(),
        "sandbox": measures,
    }
    return header, np.ascontiguousarray(out, dtype="<f8").data.cast("B")


def _init_device(torch: Any, device_name: str, policy: sandbox.SandboxPolicy) -> Any:
    if device_name == "auto":
        device_name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device_name)
    if device.type == "cuda":
        torch.cuda.init()
        torch.cuda.set_device(device)
        torch.cuda.set_per_process_memory_fraction(policy.limits.gpu_memory_fraction, device)
        # Runtime kernel compilation would want a writable cache; plain kernels need none.
        torch._C._jit_set_texpr_fuser_enabled(False)
    return device


def _read_archive(path: Path, max_bytes: int) -> bytes:
    with path.open("rb") as file:
        data = file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise JobFailed({"category": "bad_output",
                         "detail": f"the archive is larger than {max_bytes} bytes"})
    return data


def _device_label(torch: Any, device: Any) -> str:
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    threads = torch.get_num_threads()
    return f"cpu ({threads} thread{'s' if threads != 1 else ''})"


def _warm_up(
    torch: Any,
    inference: Any,
    categorical: Any,
    numerical: Any,
    names: tuple[str, ...],
    device: Any,
) -> None:
    """Load and run a tiny trusted model while still privileged and single-threaded, so that
    every lazy import the loader and the loop need is done before the user changes."""

    class _Tiny(torch.nn.Module):  # type: ignore[misc]
        def __init__(self, k: int) -> None:
            super().__init__()
            self.k = k

        def forward(self, categorical: Any, numerical: Any) -> Any:
            return torch.sigmoid(numerical[:, : self.k] + categorical[:, : self.k].float())

    example = (torch.zeros(2, 16, dtype=torch.int64), torch.zeros(2, 63))
    buffer = io.BytesIO()
    # Tracing needs no source file, unlike scripting.
    torch.jit.save(torch.jit.trace(_Tiny(len(names)), example), buffer)
    tiny = torch.jit.load(io.BytesIO(buffer.getvalue()), map_location=device)
    tiny.eval()
    rows = min(8, categorical.shape[0])
    inference.predict(tiny, categorical[:rows], numerical[:rows], names, device, rows)
    traceback.format_exception(ValueError("warm-up"))


def _data_root(prepared: Path, archive: Path) -> tuple[str, ...]:
    """The folder holding both the test set and the archive, unless that is too near the root
    to hide (a test set and an upload in unrelated places)."""
    common = Path(os.path.commonpath([prepared.resolve(), archive.resolve().parent]))
    return (str(common),) if len(common.parts) >= 3 else ()


def _model_failure(exc: BaseException, category: str) -> dict[str, Any]:
    report = reasons.classify_exception(exc)
    if report["category"] == "model_error":
        report["category"] = category
    return report


if __name__ == "__main__":
    sys.exit(main())
