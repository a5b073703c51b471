"""Running participants' TorchScript checkpoints in a sandbox (SPEC "Checkpoint").

`check_archive` refuses a bad archive before anything loads it; `run_checkpoint` runs a good one
on a prepared test set in a sandboxed child process (`child.py`, `sandbox.py`; a fork of the
pre-warmed zygote, `zygote.py`, or a fresh process) and returns its predictions, which
`CheckpointRun.to_predictions()` turns into the same `Predictions` an uploaded file gives, for
`evaluator.scoring.score_predictions`.

`app/` calls these from its queue consumer. Nothing here imports torch or touches CUDA in the
caller's process: only the child does.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from evaluator.checkpoint import reasons
from evaluator.checkpoint.archive import ArchiveError, ArchiveLimits, check_archive_file
from evaluator.checkpoint.sandbox import (
    ChildOutcome,
    Limits,
    SandboxPolicy,
    default_read_paths,
)
from evaluator.checkpoint.zygote import Started, launch_child
from evaluator.checkpoint.zygote import by_default as zygote_by_default
from evaluator.data.prepared import PreparedData
from evaluator.predictions import Predictions
from evaluator.tasks import derive_outputs

__all__ = [
    "OUTPUTS_CHOICES",
    "ArchiveLimits",
    "CheckpointFailed",
    "CheckpointRejected",
    "CheckpointRun",
    "Limits",
    "OutputsSpec",
    "batch_memory",
    "check_archive",
    "derive_probabilities",
    "parse_outputs",
    "run_checkpoint",
]

OutputsSpec = Literal["ctr,cvr", "ctr,ctcvr", "ctr,cvr,ctcvr"]
OUTPUTS_CHOICES: tuple[OutputsSpec, ...] = ("ctr,cvr", "ctr,ctcvr", "ctr,cvr,ctcvr")

_HEADER_MAX = 64 << 10
CHILD_MODULE = "evaluator.checkpoint.child"
# The largest batch size a remembered choice may be (inference.GPU_CANDIDATES' largest is 2^18).
_MAX_REMEMBERED_BATCH = 1 << 20


class _BatchMemory:
    """The batch size each checkpoint's calibration chose, per (device asked for, threads,
    archive sha256), for this process's lifetime: a second job of the same checkpoint (a
    re-score, the final phase) skips calibration. What the child reports is not trusted
    further than this: only a size it reports having timed is kept, and it only ever applies
    to the same archive's later runs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sizes: dict[tuple[str, int, str], int] = {}

    def get(self, key: tuple[str, int, str]) -> int:
        with self._lock:
            return self._sizes.get(key, 0)

    def remember(
        self, key: tuple[str, int, str], chosen: int, timed: tuple[tuple[int, float], ...]
    ) -> None:
        if 0 < chosen <= _MAX_REMEMBERED_BATCH and chosen in dict(timed):
            with self._lock:
                self._sizes[key] = chosen

    def clear(self) -> None:
        with self._lock:
            self._sizes.clear()


batch_memory = _BatchMemory()


class CheckpointRejected(Exception):
    """The archive is refused before anything loads it (not a zip, bomb, bad paths...)."""


class CheckpointFailed(Exception):
    """The sandboxed run failed; str(exc) is a reason the participant can act on."""


@dataclass(frozen=True)
class CheckpointRun:
    ctr: npt.NDArray[np.float64]
    cvr: npt.NDArray[np.float64]
    ctcvr: npt.NDArray[np.float64]
    torch_version: str
    device: str
    duration_s: float
    outputs: OutputsSpec = "ctr,cvr"
    # Loading the archive, and the batched loop over the test set (with the output checks);
    # duration_s adds process start, torch import and sandbox setup to these. cpu_s: the
    # child's CPU time, all threads.
    load_s: float = 0.0
    inference_s: float = 0.0
    sandbox: tuple[str, ...] = ()
    cpu_s: float = 0.0
    # Part of inference_s: the warm-up calls before the clock started, and the batched loop
    # over every row (`forward_rows_per_s`); the batch size it chose and the candidates' rows/s.
    warmup_s: float = 0.0
    forward_s: float = 0.0
    batch_size: int = 0
    calibration: tuple[tuple[int, float], ...] = ()
    started: Started = "fresh process"
    # The batch size came from an earlier calibration of the same archive (`batch_memory`).
    batch_remembered: bool = False

    @property
    def forward_rows_per_s(self) -> float:
        return len(self.ctr) / self.forward_s if self.forward_s > 0 else 0.0

    def to_predictions(self) -> Predictions:
        return Predictions(
            ctr=self.ctr,
            cvr=self.cvr,
            ctcvr=self.ctcvr,
            columns=("row_id", *self.outputs.split(",")),
        )


def parse_outputs(value: str) -> OutputsSpec:
    """Normalise a declared outputs string (`"ctr, cvr"` → `"ctr,cvr"`), refusing others."""
    normalised = ",".join(part.strip().lower() for part in value.split(","))
    for choice in OUTPUTS_CHOICES:
        if normalised == choice:
            return choice
    raise ValueError(
        f"outputs {value!r} not understood: expected one of {', '.join(OUTPUTS_CHOICES)}"
    )


def check_archive(
    path: Path, limits: ArchiveLimits | None = None, *, scan_code: bool = True
) -> None:
    """Raise CheckpointRejected with the reason if the archive is not acceptable."""
    try:
        check_archive_file(Path(path), limits, scan_code=scan_code)
    except ArchiveError as exc:
        raise CheckpointRejected(str(exc)) from None


def derive_probabilities(
    ctr: npt.NDArray[np.float64],
    second: npt.NDArray[np.float64],
    third: npt.NDArray[np.float64] | None,
    outputs: OutputsSpec,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(ctr, cvr, ctcvr) from the arrays in the order of the declared outputs; the one left out
    is derived by `evaluator.tasks.derive_outputs`, as for a prediction file."""
    if outputs == "ctr,cvr,ctcvr":
        if third is None:
            raise ValueError("outputs ctr,cvr,ctcvr need three arrays")
        return derive_outputs(ctr, cvr=second, ctcvr=third)
    if outputs == "ctr,cvr":
        return derive_outputs(ctr, cvr=second)
    return derive_outputs(ctr, ctcvr=second)


def run_checkpoint(
    archive: Path,
    prepared_dir: Path,
    outputs: OutputsSpec,
    *,
    limits: Limits | None = None,
    device: str = "auto",
    batch_size: int = 0,
    threads: int = 0,
    archive_limits: ArchiveLimits | None = None,
    scan_code: bool = True,
    refuse_forbidden_ops: bool = True,
    hidden_paths: tuple[str, ...] | None = None,
    zygote: bool | None = None,
) -> CheckpointRun:
    """Run the checkpoint on a prepared test set in a sandboxed child process: a fork of this
    process's zygote when `zygote` is set (started on first use; a fresh process when none can
    run), else a fresh process; None: the process's default (`zygote.use_by_default`, which a
    worker sets from LB_CHECKPOINT_ZYGOTE). Both children confine themselves alike (child.py).

    `device` is "auto" (the GPU when the child finds one), "cpu" or "cuda[:i]"; `batch_size`
    0 chooses one by measurement on the first rows, or reuses the one an earlier run of the
    same archive on the same device and threads chose (`batch_memory`); `threads` 0 uses every
    core the process may run on.
    Raises CheckpointRejected for a bad archive and CheckpointFailed, with a reason for the
    participant, for a failed run.

    `scan_code` (a text scan of the archive's code, before loading: a courtesy for the plain
    case, not a defence) and `refuse_forbidden_ops` (the operator allow-list on the loaded
    graphs, before the first batch: the defence) refuse models that call what they may not;
    the sandbox blocks file and network access regardless, and tests turn these off to show
    it. `hidden_paths` replaces the directories hidden from the child.
    """
    limits = limits or Limits()
    archive_limits = archive_limits or ArchiveLimits()
    outputs = parse_outputs(outputs)
    names = tuple(outputs.split(","))
    archive = Path(archive).resolve()
    check_archive(archive, archive_limits, scan_code=scan_code)
    memory_key = (device, threads, _sha256(archive))
    remembered = batch_memory.get(memory_key) if batch_size <= 0 else 0
    prepared_dir = Path(prepared_dir).resolve()
    n_rows = PreparedData.open(prepared_dir).n_rows
    policy = SandboxPolicy(limits=limits, read_paths=default_read_paths())
    if hidden_paths is not None:
        policy = replace(policy, hidden_paths=tuple(hidden_paths))
    job: dict[str, Any] = {
        "archive": str(archive),
        "prepared_dir": str(prepared_dir),
        "n_rows": n_rows,
        "outputs": list(names),
        "device": device,
        "batch_size": remembered or batch_size,
        "threads": threads,
        "max_archive_bytes": archive_limits.max_archive_bytes,
        "refuse_forbidden_ops": refuse_forbidden_ops,
        "policy": policy.to_json(),
    }
    started = time.monotonic()
    outcome, started_in = launch_child(
        CHILD_MODULE,
        job,
        wall_time_s=limits.wall_time_s,
        max_result_bytes=_HEADER_MAX + n_rows * len(names) * 8,
        zygote=zygote_by_default() if zygote is None else zygote,
    )
    duration = time.monotonic() - started
    header, payload = _split_result(outcome.result)
    if header is None or header.get("status") != "ok" or outcome.wall_timed_out:
        raise CheckpointFailed(_failure_reason(outcome, header, limits))
    if outcome.returncode != 0:
        raise CheckpointFailed(_failure_reason(outcome, None, limits))
    expected = n_rows * len(names) * 8
    if header.get("n_rows") != n_rows or len(payload) != expected:
        raise CheckpointFailed(
            f"bad output: received {len(payload)} bytes of predictions, expected "
            f"{expected} ({n_rows} rows x {len(names)} outputs)"
        )
    matrix = np.frombuffer(payload, dtype="<f8").reshape(len(names), n_rows).astype(np.float64)
    # The child checked these already; checked again here because the child ran the
    # participant's code and what it sends back is not to be trusted.
    if not np.isfinite(matrix).all() or (matrix < 0).any() or (matrix > 1).any():
        raise CheckpointFailed("bad output: predictions outside [0, 1] or not finite")
    ctr, cvr, ctcvr = derive_probabilities(
        matrix[0], matrix[1], matrix[2] if len(names) == 3 else None, outputs
    )
    sandbox = header.get("sandbox")
    chosen = _count(header.get("batch_size"))
    calibration = _calibration(header.get("calibration"))
    if batch_size <= 0 and not remembered:
        batch_memory.remember(memory_key, chosen, calibration)
    return CheckpointRun(
        ctr=np.ascontiguousarray(ctr),
        cvr=np.ascontiguousarray(cvr),
        ctcvr=np.ascontiguousarray(ctcvr),
        torch_version=_text(header.get("torch_version")),
        device=_text(header.get("device")),
        duration_s=duration,
        outputs=outputs,
        load_s=_seconds(header.get("load_s")),
        inference_s=_seconds(header.get("inference_s")),
        sandbox=tuple(_text(item) for item in sandbox[:20]) if isinstance(sandbox, list) else (),
        cpu_s=outcome.cpu_s,
        warmup_s=_seconds(header.get("warmup_s")),
        forward_s=_seconds(header.get("forward_s")),
        batch_size=chosen,
        calibration=calibration,
        started=started_in,
        batch_remembered=bool(remembered),
    )


def _sha256(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def _text(value: object, limit: int = 200) -> str:
    return value[:limit] if isinstance(value, str) else ""


def _seconds(value: object) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return 0.0


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _calibration(value: object) -> tuple[tuple[int, float], ...]:
    if not isinstance(value, list):
        return ()
    items = [
        (_count(item[0]), _seconds(item[1]))
        for item in value[:20]
        if isinstance(item, list) and len(item) == 2
    ]
    return tuple(item for item in items if item[0])


def _split_result(result: bytes) -> tuple[dict[str, Any] | None, bytes]:
    newline = result.find(b"\n", 0, _HEADER_MAX)
    if newline < 0:
        return None, b""
    try:
        header = json.loads(result[:newline])
    except ValueError:
        return None, b""
    if not isinstance(header, dict):
        return None, b""
    return header, result[newline + 1 :]


def _failure_reason(outcome: ChildOutcome, header: dict[str, Any] | None, limits: Limits) -> str:
    """One of the fixed reasons of `reasons`: how the process ended comes first when it was
    killed at a limit, else what the child reported, else how it ended."""
    if (
        header is not None
        and header.get("status") == "failed"
        and not outcome.wall_timed_out
        and outcome.term_signal is None
    ):
        return reasons.compose(header, memory_bytes=limits.memory_bytes)
    return reasons.from_ending(
        wall_timed_out=outcome.wall_timed_out,
        term_signal=outcome.term_signal,
        returncode=outcome.returncode,
        cpu_s=outcome.cpu_s,
        result_overflow=outcome.result_overflow,
        output_tail=outcome.output_tail,
        wall_limit_s=limits.wall_time_s,
        cpu_limit_s=limits.cpu_seconds(),
        memory_bytes=limits.memory_bytes,
    )
