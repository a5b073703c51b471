"""Hostile checkpoints built by the tests: each job fails with its reason, nothing outside the
sandbox changes, and the next job (an honest checkpoint) scores normally."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from checkpoint_factories import (
    AllocatesTooMuch,
    CallsRpc,
    LoopsForever,
    NaNAtRow3,
    ReadsFile,
    WritesOnLoad,
    WrongShape,
    reference_outputs,
    save,
    script,
    truncated_copy,
    zip_bomb,
)

from evaluator.checkpoint import (
    CheckpointFailed,
    CheckpointRejected,
    Limits,
    run_checkpoint,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _snapshot(*roots: Path) -> dict[str, tuple[int, str]]:
    """Every file under `roots` with its mode and content hash."""
    state: dict[str, tuple[int, str]] = {}
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                state[str(path)] = (path.stat().st_mode, digest)
            else:
                state[str(path)] = (path.stat().st_mode, "")
    return state


@pytest.fixture(scope="module")
def honest_reference(honest_archive: Path, prepared: Path) -> np.ndarray:
    return reference_outputs(honest_archive, prepared)


def _assert_next_job_scores(
    honest_archive: Path, prepared: Path, honest_reference: np.ndarray
) -> None:
    run = run_checkpoint(honest_archive, prepared, "ctr,cvr")
    np.testing.assert_allclose(run.ctr, honest_reference[0], rtol=0, atol=1e-6)
    np.testing.assert_allclose(run.cvr, honest_reference[1], rtol=0, atol=1e-6)


# A case: (build the archive from the test's folder and the prepared set, run_checkpoint's
# keyword arguments, the error expected, a pattern of its reason).
Case = tuple[Callable[[Path, Path], Path], dict[str, Any], type[Exception], str]


def _scripted(factory: Callable[[Path, Path], Any]) -> Callable[[Path, Path], Path]:
    def build(tmp: Path, prepared: Path) -> Path:
        return save(script(factory(tmp, prepared)), tmp / "hostile.pt")

    return build


CASES: dict[str, Case] = {
    "write-on-load, refused by the code scan": (
        _scripted(lambda tmp, prepared: WritesOnLoad(str(tmp / "pwned.pt"))),
        {},
        CheckpointRejected,
        r"calls torch\.save",
    ),
    "write-on-load, refused after loading in the sandbox": (
        _scripted(lambda tmp, prepared: WritesOnLoad(str(tmp / "pwned.pt"))),
        {"scan_code": False},
        CheckpointFailed,
        r"calls aten::save in __setstate__",
    ),
    "read /etc/passwd in forward, refused after loading": (
        _scripted(lambda tmp, prepared: ReadsFile("/etc/passwd")),
        {"scan_code": False},
        CheckpointFailed,
        r"calls aten::from_file in forward",
    ),
    "read /etc/passwd in forward, blocked by the sandbox": (
        _scripted(lambda tmp, prepared: ReadsFile("/etc/passwd")),
        {"scan_code": False, "refuse_forbidden_ops": False},
        CheckpointFailed,
        r"^file access refused: a checkpoint may not read or write files$",
    ),
    "read the test labels in forward, blocked by the sandbox": (
        _scripted(lambda tmp, prepared: ReadsFile(str(prepared / "click.npy"))),
        {"scan_code": False, "refuse_forbidden_ops": False},
        CheckpointFailed,
        r"^file access refused: a checkpoint may not read or write files$",
    ),
    "an RPC to another machine, refused by the code scan": (
        _scripted(lambda tmp, prepared: CallsRpc()),
        {},
        CheckpointRejected,
        r"^the model calls rpc_async",
    ),
    "an RPC to another machine, unscanned: the archive does not even load": (
        _scripted(lambda tmp, prepared: CallsRpc()),
        {"scan_code": False, "refuse_forbidden_ops": False},
        CheckpointFailed,
        r"^loading the checkpoint failed: ",
    ),
    "loops forever": (
        _scripted(lambda tmp, prepared: LoopsForever()),
        {"limits": Limits(wall_time_s=120, cpu_time_s=6)},
        CheckpointFailed,
        r"^time limit: the run used more than 6 s of CPU time",
    ),
    "allocates far past the cap": (
        _scripted(lambda tmp, prepared: AllocatesTooMuch()),
        {"limits": Limits(memory_bytes=3 << 30)},
        CheckpointFailed,
        r"^memory limit: the model needed more than the 3 GiB allowed",
    ),
    "wrong output shape": (
        _scripted(lambda tmp, prepared: WrongShape()),
        {},
        CheckpointFailed,
        r"^bad output: output has shape \[B, 1\], expected \[B, 2\] \(ctr, cvr\)",
    ),
    "NaN output": (
        _scripted(lambda tmp, prepared: NaNAtRow3()),
        {},
        CheckpointFailed,
        r"^bad output: output cvr is not a finite number at 1 row \(first row_id 3: nan\)",
    ),
    "truncated archive": (
        lambda tmp, prepared: truncated_copy(
            save(script(WrongShape()), tmp / "whole.pt"), tmp / "hostile.pt"
        ),
        {},
        CheckpointRejected,
        r"not a valid zip archive",
    ),
    "zip bomb": (
        lambda tmp, prepared: zip_bomb(tmp / "hostile.pt"),
        {},
        CheckpointRejected,
        r"expands \d+-fold",
    ),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_a_hostile_checkpoint_fails_with_its_reason_and_changes_nothing(
    case: str,
    tmp_path: Path,
    prepared: Path,
    honest_archive: Path,
    honest_reference: np.ndarray,
) -> None:
    build, kwargs, error, reason = CASES[case]
    archive = build(tmp_path, prepared)
    before = _snapshot(tmp_path, prepared)
    with pytest.raises(error, match=reason):
        run_checkpoint(archive, prepared, "ctr,cvr", **kwargs)
    assert _snapshot(tmp_path, prepared) == before
    assert not (tmp_path / "pwned.pt").exists()
    if error is CheckpointFailed:
        # It ran (a refused archive never starts a child): the next job must be unaffected.
        _assert_next_job_scores(honest_archive, prepared, honest_reference)


def test_a_load_time_write_is_blocked_by_landlock_alone(tmp_path: Path, prepared: Path) -> None:
    # No scans and no hidden directories: only Landlock (and the file-size rlimit) stand between
    # the model and tmp_path. aten::save ignores the error, so the job itself completes.
    # The archive's own folder is always hidden from the child; the target's folder is not.
    target = tmp_path / "pwned.pt"
    (tmp_path / "upload").mkdir()
    archive = save(script(WritesOnLoad(str(target))), tmp_path / "upload" / "writer.pt")
    run_checkpoint(
        archive,
        prepared,
        "ctr,cvr",
        scan_code=False,
        refuse_forbidden_ops=False,
        hidden_paths=(),
    )
    assert not target.exists()


def test_the_writing_model_does_write_when_loaded_outside_the_sandbox(tmp_path: Path) -> None:
    # The control for the tests above: the hostile model is real.
    target = tmp_path / "written.pt"
    archive = save(script(WritesOnLoad(str(target))), tmp_path / "writer.pt")
    # torch ships torch.jit.load without annotations.
    torch.jit.load(str(archive))  # type: ignore[no-untyped-call]
    assert target.exists()


def test_the_reading_model_does_read_when_run_outside_the_sandbox(tmp_path: Path) -> None:
    archive = save(script(ReadsFile("/etc/passwd")), tmp_path / "reader.pt")
    # torch ships torch.jit.load without annotations.
    loaded = torch.jit.load(str(archive))  # type: ignore[no-untyped-call]
    out = loaded(torch.zeros(1, 16, dtype=torch.int64), torch.zeros(1, 63))
    first = Path("/etc/passwd").read_bytes()[:2]
    assert out[0].tolist() == pytest.approx([first[0] / 255, first[1] / 255])
