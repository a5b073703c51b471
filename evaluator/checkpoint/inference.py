"""Batched inference of a loaded model over a memory-mapped test set, and checks on its outputs.

The model is called as SPEC "Checkpoint" says: `model(categorical int64 [B, 16],
numerical float32 [B, 63])`, returning a tensor [B, k] or a tuple/list of k tensors [B]. The loop
is per batch, never per row; outputs land in one preallocated float64 matrix [k, N] that is
checked once at the end (on the GPU that keeps the loop free of host synchronisation).

`predict_timed` warms the model up on the first rows before the clock starts (TorchScript
profiles its first call and optimises on the next; the allocator pays for the largest batch's
buffers once), and, unless told a batch size, chooses one by measurement: each candidate in
turn runs on the next rows of the test set (their outputs are kept: calibration costs no extra
forward, only rows run at sizes that turn out slower, at most `CALIBRATION_BUDGET` of them), and
the fastest in rows/s takes the rest.
"""

from __future__ import annotations

import math
import time
import warnings
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from evaluator.schema import N_CATEGORICAL, N_NUMERICAL

Model = Callable[[torch.Tensor, torch.Tensor], Any]
Clock = Callable[[], float]

# Used when the test set is too small to calibrate on.
DEFAULT_CPU_BATCH = 4096
DEFAULT_GPU_BATCH = 65536
CPU_CANDIDATES = (1024, 2048, 4096, 8192, 16384)
GPU_CANDIDATES = (16384, 32768, 65536, 131072, 262144)
# Calibration (BatchPlan): rounds over the candidates, each timing one sample per candidate of
# at least this many rows; after a round, candidates under this share of the best drop out.
# All rounds together take at most this share of the test set's rows.
CALIBRATION_ROWS = 1024
CALIBRATION_ROUNDS = 2
CALIBRATION_KEEP = 0.7
CALIBRATION_BUDGET = 0.1
# Calls of the model before any timing: the first on the first batch, the others on as many
# rows as the largest batch of the pass.
WARMUP_CALLS = 2
# Rows moved host -> device per pinned staging buffer.
_STAGE_ROWS = 262144


class OutputError(Exception):
    """The model's output breaks the contract; the message is for the participant."""


def _shape_text(shape: Sequence[int], batch: int) -> str:
    dims = ["B" if i == 0 and d == batch else str(d) for i, d in enumerate(shape)]
    return "[" + ", ".join(dims) + "]"


def output_columns(raw: object, batch: int, names: tuple[str, ...]) -> torch.Tensor:
    """Validate one batch's output and return it as a [B, k] tensor (a view where possible)."""
    k = len(names)
    expected = f"a tensor [B, {k}] or a tuple/list of {k} tensors [B] ({', '.join(names)})"
    if isinstance(raw, torch.Tensor):
        if raw.dim() != 2 or raw.shape[0] != batch or raw.shape[1] != k:
            raise OutputError(
                f"output has shape {_shape_text(raw.shape, batch)}, expected [B, {k}] "
                f"({', '.join(names)}) for a batch of B = {batch} rows"
            )
        _check_dtype(raw, "output")
        return raw
    if isinstance(raw, tuple | list):
        if len(raw) != k:
            raise OutputError(
                f"output is a {type(raw).__name__} of {len(raw)} items, expected {expected}"
            )
        for name, column in zip(names, raw, strict=True):
            if not isinstance(column, torch.Tensor):
                raise OutputError(f"output {name} is a {type(column).__name__}, not a tensor")
            if column.dim() != 1 or column.shape[0] != batch:
                raise OutputError(
                    f"output {name} has shape {_shape_text(column.shape, batch)}, expected [B] "
                    f"for a batch of B = {batch} rows"
                )
            _check_dtype(column, f"output {name}")
        return torch.stack([column.to(raw[0].device) for column in raw], dim=1)
    raise OutputError(f"output is a {type(raw).__name__}, expected {expected}")


def _check_dtype(tensor: torch.Tensor, what: str) -> None:
    if not tensor.is_floating_point():
        raise OutputError(f"{what} has dtype {tensor.dtype}, expected floating-point probabilities")


def check_values(out: torch.Tensor, names: tuple[str, ...]) -> None:
    """Every prediction must be a finite number in [0, 1]; report the first offender."""
    for j, name in enumerate(names):
        column = out[j]
        bad = ~torch.isfinite(column)
        kind = "is not a finite number"
        if not bool(bad.any()):
            bad = (column < 0) | (column > 1)
            kind = "is outside [0, 1]"
            if not bool(bad.any()):
                continue
        rows = torch.nonzero(bad).flatten()
        first = int(rows[0])
        count = rows.numel()
        raise OutputError(
            f"output {name} {kind} at {count} row{'s' if count > 1 else ''} "
            f"(first row_id {first}: {float(column[first])!r})"
        )


def _from_mmap(array: npt.NDArray[Any]) -> torch.Tensor:
    # Read-only memory maps are never written through; torch warns about them anyway.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(array)


@dataclass(frozen=True)
class Timing:
    """Where a pass's time went. `forward_s` is the batched loop over every row (calibration
    batches included: their outputs are kept), without the warm-up and the output check."""

    warmup_s: float
    forward_s: float
    check_s: float
    batch_size: int
    # (batch size, rows/s) of each candidate tried, in order; empty when none was.
    calibration: tuple[tuple[int, float], ...] = ()


class BatchPlan:
    """The batch sizes of one pass: a fixed one, or a calibration first.

    Calibration runs in `rounds`: in each, every candidate still in the race (ascending) times
    one sample of at least `sample_rows` rows; after a round, candidates below `keep_ratio` of
    the best rate so far drop out. A candidate's rate is its best sample's (on a shared machine
    a sample can lose its cores for a while; the best of interleaved samples is what the size
    can do). Then the fastest runs every remaining batch. The rows of all rounds together stay
    within `budget` of the test set: the first round takes the candidates (ascending) that fit,
    later rounds those still in the race that fit in what is left; with none fitting the pass
    uses `default`. The loop calls `next_size()` before each batch and `done(rows)` after it;
    `sync` waits for queued device work so that a sample's clock stops when its batches are
    done.
    """

    def __init__(
        self,
        n_rows: int,
        batch_size: int,
        candidates: Sequence[int],
        *,
        default: int,
        sync: Callable[[], None] = lambda: None,
        clock: Clock = time.perf_counter,
        sample_rows: int = CALIBRATION_ROWS,
        rounds: int = CALIBRATION_ROUNDS,
        keep_ratio: float = CALIBRATION_KEEP,
        budget: float = CALIBRATION_BUDGET,
    ) -> None:
        self._sync = sync
        self._clock = clock
        self._sample_rows = sample_rows
        self._rounds = rounds
        self._keep_ratio = keep_ratio
        # (batch size, first batch of its sample, last batch of its sample)
        self._queue: deque[tuple[int, bool, bool]] = deque()
        self._rates: dict[int, list[float]] = {}
        self._round = 0
        self._started = 0.0
        self._rows = 0
        self._budget_rows = int(n_rows * budget)
        self.calibration_rows = 0
        self.chosen = batch_size if batch_size > 0 else default
        self.max_size = self.chosen
        if batch_size > 0:
            return
        used = 0
        for size in sorted(set(candidates)):
            need = self._sample_cost(size)
            if used + need > self._budget_rows:
                break
            used += need
            self._rates[size] = []
        self._live = list(self._rates)
        if len(self._live) == 1:
            # One candidate is no choice: it would only run the default's rows at its size.
            self._rates.clear()
            self._live = []
        # The default runs only when no candidate is timed.
        self.max_size = max(self._rates) if self._rates else default
        self._next_round()

    def _sample_cost(self, size: int) -> int:
        return size * math.ceil(self._sample_rows / size)

    @property
    def calibration(self) -> tuple[tuple[int, float], ...]:
        """(batch size, its best sample's rows/s) of every candidate timed."""
        return tuple((size, max(rates)) for size, rates in self._rates.items() if rates)

    def next_size(self) -> int:
        if not self._queue:
            return self.chosen
        size, first, _ = self._queue[0]
        if first:
            self._sync()
            self._rows = 0
            self._started = self._clock()
        return size

    def done(self, rows: int) -> None:
        if not self._queue:
            return
        size, _, last = self._queue.popleft()
        self._rows += rows
        self.calibration_rows += rows
        if last:
            self._sync()
            elapsed = self._clock() - self._started
            self._rates[size].append(self._rows / elapsed if elapsed > 0 else math.inf)
        if not self._queue:
            best = dict(self.calibration)
            self.chosen = max(best, key=lambda size: best[size])
            top = best[self.chosen]
            self._live = [size for size in self._live if best[size] >= self._keep_ratio * top]
            self._next_round()

    def _next_round(self) -> None:
        if self._round >= self._rounds or len(self._live) < (2 if self._round else 1):
            return
        self._round += 1
        left = self._budget_rows - self.calibration_rows
        sizes = []
        for size in self._live:
            if self._sample_cost(size) <= left:
                left -= self._sample_cost(size)
                sizes.append(size)
        if len(sizes) < 2:
            # A round of one candidate cannot change the choice.
            return
        for size in sizes:
            batches = math.ceil(self._sample_rows / size)
            self._queue.extend((size, i == 0, i == batches - 1) for i in range(batches))


def predict(
    model: Model,
    categorical: npt.NDArray[np.int32],
    numerical: npt.NDArray[np.float32],
    names: tuple[str, ...],
    device: torch.device,
    batch_size: int,
) -> npt.NDArray[np.float64]:
    """Run `model` over every row in batches of `batch_size`, with no warm-up; return checked
    probabilities as float64 [k, N] on the host."""
    return predict_timed(
        model, categorical, numerical, names, device, batch_size, warmup=False
    )[0]


def predict_timed(
    model: Model,
    categorical: npt.NDArray[np.int32],
    numerical: npt.NDArray[np.float32],
    names: tuple[str, ...],
    device: torch.device,
    batch_size: int = 0,
    *,
    warmup: bool = True,
    candidates: Sequence[int] | None = None,
    clock: Clock = time.perf_counter,
) -> tuple[npt.NDArray[np.float64], Timing]:
    """Run `model` over every row; return checked probabilities as float64 [k, N] on the host,
    and the timing. `batch_size` 0 calibrates over `candidates` (the device's by default)."""
    n_rows = categorical.shape[0]
    if categorical.shape != (n_rows, N_CATEGORICAL) or numerical.shape != (n_rows, N_NUMERICAL):
        raise ValueError(
            f"test set arrays have shapes {categorical.shape} and {numerical.shape}, expected "
            f"[N, {N_CATEGORICAL}] and [N, {N_NUMERICAL}]"
        )
    cuda = device.type == "cuda"

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(device)

    plan = BatchPlan(
        n_rows,
        batch_size,
        candidates if candidates is not None else (GPU_CANDIDATES if cuda else CPU_CANDIDATES),
        default=DEFAULT_GPU_BATCH if cuda else DEFAULT_CPU_BATCH,
        sync=sync,
        clock=clock,
    )
    warm = _WarmUp(model, names, sync, clock, WARMUP_CALLS if warmup else 0)
    with torch.inference_mode():
        start = clock()
        if cuda:
            out = _predict_cuda(model, categorical, numerical, names, device, plan, warm)
        else:
            out = _predict_cpu(model, categorical, numerical, names, plan, warm)
        checked = clock()
        check_values(out, names)
        host = out.cpu().numpy()
        end = clock()
    timing = Timing(
        warmup_s=warm.seconds,
        forward_s=checked - start - warm.seconds,
        check_s=end - checked,
        batch_size=plan.chosen,
        calibration=plan.calibration,
    )
    return host, timing


class _WarmUp:
    """Calls the model `calls` times before the loop proper, and keeps the time apart; the
    outputs are checked for their shape and dropped. The first call takes the first batch's
    rows, the others every row they are given (as many as the pass's largest batch on the CPU),
    so that the first call at a new size, which pays for fresh memory, is not a timed one."""

    def __init__(
        self, model: Model, names: tuple[str, ...], sync: Callable[[], None], clock: Clock,
        calls: int,
    ) -> None:
        self.model, self.names, self.sync, self.clock, self.calls = model, names, sync, clock, calls
        self.seconds = 0.0

    def __call__(self, cat: torch.Tensor, num: torch.Tensor, first: int | None = None) -> None:
        if self.calls <= 0:
            return
        start = self.clock()
        for call in range(self.calls):
            rows = first if call == 0 and first is not None else cat.shape[0]
            # A copy each time, so that a model writing into its input changes nothing later.
            output_columns(self.model(cat[:rows].clone(), num[:rows].clone()), rows, self.names)
        self.sync()
        self.seconds = self.clock() - start
        self.calls = 0


def _predict_cpu(
    model: Model,
    categorical: npt.NDArray[np.int32],
    numerical: npt.NDArray[np.float32],
    names: tuple[str, ...],
    plan: BatchPlan,
    warm: _WarmUp,
) -> torch.Tensor:
    n_rows = categorical.shape[0]
    cat_src = _from_mmap(categorical)
    num_src = _from_mmap(numerical)
    out = torch.empty((len(names), n_rows), dtype=torch.float64)
    # Reused input buffers: the copy also widens int32 categoricals to the int64 the model takes.
    held = min(plan.max_size, n_rows)
    cat_buf = torch.empty((held, N_CATEGORICAL), dtype=torch.int64)
    num_buf = torch.empty((held, N_NUMERICAL), dtype=torch.float32)
    if warm.calls > 0 and n_rows > 0:
        cat_buf.copy_(cat_src[:held])
        num_buf.copy_(num_src[:held])
        warm(cat_buf, num_buf, first=min(plan.next_size(), held))
    start = 0
    while start < n_rows:
        end = min(start + plan.next_size(), n_rows)
        rows = end - start
        cat = cat_buf[:rows]
        num = num_buf[:rows]
        cat.copy_(cat_src[start:end])
        num.copy_(num_src[start:end])
        columns = output_columns(model(cat, num), rows, names)
        out[:, start:end].copy_(columns.t())
        plan.done(rows)
        start = end
    return out


def _predict_cuda(
    model: Model,
    categorical: npt.NDArray[np.int32],
    numerical: npt.NDArray[np.float32],
    names: tuple[str, ...],
    device: torch.device,
    plan: BatchPlan,
    warm: _WarmUp,
) -> torch.Tensor:
    """Upload the test set in its compact dtypes (int32, float32) once through pinned staging
    buffers when it fits in free device memory, else chunk by chunk; then batch on the device."""
    n_rows = categorical.shape[0]
    row_bytes = N_CATEGORICAL * 4 + N_NUMERICAL * 4
    free, _ = torch.cuda.mem_get_info(device)
    # Leave room for the model, its activations and the output matrix.
    resident = n_rows * row_bytes < free // 3
    chunk_rows = n_rows if resident else max(plan.max_size, _STAGE_ROWS)
    out = torch.empty((len(names), n_rows), dtype=torch.float64, device=device)
    held = min(chunk_rows, n_rows)
    cat_dev = torch.empty((held, N_CATEGORICAL), dtype=torch.int32, device=device)
    num_dev = torch.empty((held, N_NUMERICAL), dtype=torch.float32, device=device)
    stager = _PinnedStager(categorical, numerical, device)
    for chunk_start in range(0, n_rows, chunk_rows):
        chunk_end = min(chunk_start + chunk_rows, n_rows)
        stager.upload(chunk_start, chunk_end, cat_dev, num_dev)
        start = chunk_start
        while start < chunk_end:
            end = min(start + plan.next_size(), chunk_end)
            rows = end - start
            local = slice(start - chunk_start, end - chunk_start)
            cat = cat_dev[local].to(torch.int64)
            # A copy, so that a model writing into its input cannot alter later batches.
            num = num_dev[local].clone()
            warm(cat, num)
            columns = output_columns(model(cat, num), rows, names)
            out[:, start:end].copy_(columns.t(), non_blocking=True)
            plan.done(rows)
            start = end
    torch.cuda.synchronize(device)
    return out


class _PinnedStager:
    """Copies memory-mapped rows to the device through two pinned buffers, so that reading the
    next slice from the page cache overlaps the asynchronous copy of the previous one."""

    def __init__(
        self,
        categorical: npt.NDArray[np.int32],
        numerical: npt.NDArray[np.float32],
        device: torch.device,
    ) -> None:
        rows = min(_STAGE_ROWS, categorical.shape[0])
        self._cat_src = _from_mmap(categorical)
        self._num_src = _from_mmap(numerical)
        self._stream = torch.cuda.Stream(device)  # type: ignore[no-untyped-call]
        self._buffers = [
            (
                torch.empty((rows, N_CATEGORICAL), dtype=torch.int32, pin_memory=True),
                torch.empty((rows, N_NUMERICAL), dtype=torch.float32, pin_memory=True),
                torch.cuda.Event(),  # type: ignore[no-untyped-call]
            )
            for _ in range(2)
        ]
        self._rows = rows
        self._used = [False, False]

    def upload(self, start: int, end: int, cat_dev: torch.Tensor, num_dev: torch.Tensor) -> None:
        # The compute stream must not overwrite the device buffers before earlier batches used
        # them, nor read them before this upload lands.
        self._stream.wait_stream(torch.cuda.current_stream())
        for i, offset in enumerate(range(start, end, self._rows)):
            stop = min(offset + self._rows, end)
            slot = i % 2
            cat_host, num_host, done = self._buffers[slot]
            if self._used[slot]:
                done.synchronize()
            n = stop - offset
            cat_host[:n].copy_(self._cat_src[offset:stop])
            num_host[:n].copy_(self._num_src[offset:stop])
            with torch.cuda.stream(self._stream):
                local = slice(offset - start, stop - start)
                cat_dev[local].copy_(cat_host[:n], non_blocking=True)
                num_dev[local].copy_(num_host[:n], non_blocking=True)
                done.record(self._stream)
            self._used[slot] = True
        torch.cuda.current_stream().wait_stream(self._stream)
