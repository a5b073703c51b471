"""The zygote (evaluator/checkpoint/zygote.py): a job forked from it gives what a fresh child
gives, is confined alike (see also test_sandbox.py, which runs every sandbox test both ways),
holds nothing of the zygote's or of other jobs, and a dead zygote never stops the next job."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from checkpoint_factories import reference_outputs

from evaluator.checkpoint import CheckpointFailed, CheckpointRun, run_checkpoint, zygote
from evaluator.checkpoint.sandbox import ChildOutcome, Limits, SandboxPolicy, default_read_paths
from evaluator.checkpoint.zygote import RESULT_FD, Zygote, ZygoteUnavailable, launch_child
from tests.evaluator.checkpoint.test_hostile_checkpoints import CASES, _snapshot

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

FD_PAYLOAD = "tests.evaluator.checkpoint.zygote_payload"
SANDBOX_PAYLOAD = "tests.evaluator.checkpoint.sandbox_payload"


@pytest.fixture(autouse=True)
def fresh_shared_zygote() -> Iterator[None]:
    """Each test starts without the process-wide zygote and leaves none behind."""
    zygote.close_shared()
    yield
    zygote.close_shared()


@pytest.fixture(scope="module")
def parent() -> Iterator[Zygote]:
    started = Zygote()
    started.start()
    yield started
    started.close()


def _wait_gone(pid: int, deadline_s: float = 60) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split()[2]
        except OSError:
            return
        if state == "Z":
            return
        time.sleep(0.05)
    raise AssertionError(f"process {pid} still runs")


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def test_a_job_through_the_zygote_gives_exactly_the_fresh_childs_predictions(
    honest_archive: Path, prepared: Path
) -> None:
    fresh = run_checkpoint(honest_archive, prepared, "ctr,cvr", batch_size=128, zygote=False)
    forked = run_checkpoint(honest_archive, prepared, "ctr,cvr", batch_size=128, zygote=True)
    assert (fresh.started, forked.started) == ("fresh process", "zygote")
    for task in ("ctr", "cvr", "ctcvr"):
        np.testing.assert_array_equal(getattr(forked, task), getattr(fresh, task))
    assert forked.sandbox == fresh.sandbox
    # The timing each records: the warm-up apart from the forward, the batch size it used.
    for run in (fresh, forked):
        assert run.batch_size == 128
        assert run.warmup_s > 0 and run.forward_s > 0 and run.forward_rows_per_s > 0
        assert run.inference_s >= run.warmup_s + run.forward_s
    assert forked.device == fresh.device and forked.torch_version == fresh.torch_version


def test_jobs_through_the_shared_zygote_reuse_one_process(
    honest_archive: Path, prepared: Path
) -> None:
    run_checkpoint(honest_archive, prepared, "ctr,cvr", zygote=True)
    first = zygote.shared()
    assert first is not None and first.alive()
    second = run_checkpoint(honest_archive, prepared, "ctr,cvr", zygote=True)
    assert second.started == "zygote"
    assert zygote.shared() is first


def test_a_zygote_first_needed_on_a_thread_that_ended_lives_on(
    honest_archive: Path, prepared: Path
) -> None:
    # The parent-death signal follows the thread that started a process; a job's thread may end.
    thread = threading.Thread(
        target=lambda: run_checkpoint(honest_archive, prepared, "ctr,cvr", zygote=True)
    )
    thread.start()
    thread.join(timeout=300)
    first = zygote.shared()
    assert first is not None and first.pid is not None
    run = run_checkpoint(honest_archive, prepared, "ctr,cvr", zygote=True)
    assert run.started == "zygote"
    assert zygote.shared() is first and first.alive()


FAILING = [name for name, case in CASES.items() if case[2] is CheckpointFailed]


@pytest.mark.parametrize("case", FAILING, ids=FAILING)
def test_a_hostile_checkpoint_in_a_fork_fails_with_its_reason_and_changes_nothing(
    case: str, tmp_path: Path, prepared: Path, honest_archive: Path
) -> None:
    # The cases of test_hostile_checkpoints.py that run a child (file reads, CPU time and memory
    # limits, bad outputs), through the zygote; then an honest job through the same zygote.
    build, kwargs, error, reason = CASES[case]
    archive = build(tmp_path, prepared)
    before = _snapshot(tmp_path, prepared)
    with pytest.raises(error, match=reason):
        run_checkpoint(archive, prepared, "ctr,cvr", zygote=True, **kwargs)
    assert _snapshot(tmp_path, prepared) == before
    assert not (tmp_path / "pwned.pt").exists()
    expected = reference_outputs(honest_archive, prepared)
    run = run_checkpoint(honest_archive, prepared, "ctr,cvr", zygote=True)
    assert run.started == "zygote"
    np.testing.assert_allclose(run.ctr, expected[0], rtol=0, atol=1e-6)


def test_the_next_job_runs_after_the_zygote_was_killed(
    honest_archive: Path, prepared: Path
) -> None:
    run_checkpoint(honest_archive, prepared, "ctr,cvr", zygote=True)
    dead = zygote.shared()
    assert dead is not None and dead.pid is not None
    os.kill(dead.pid, signal.SIGKILL)
    _wait_gone(dead.pid)
    run = run_checkpoint(honest_archive, prepared, "ctr,cvr", zygote=True)
    assert run.started == "zygote"
    again = zygote.shared()
    assert again is not None and again.pid != dead.pid
    np.testing.assert_allclose(run.ctr, reference_outputs(honest_archive, prepared)[0], atol=1e-6)


def _sleep_job(seconds: float) -> dict[str, Any]:
    policy = SandboxPolicy(limits=Limits(wall_time_s=120), read_paths=default_read_paths())
    return {"policy": policy.to_json(), "actions": [{"kind": "sleep", "seconds": seconds}]}


def test_a_job_whose_zygote_dies_under_it_is_run_again_and_completes() -> None:
    results: list[tuple[ChildOutcome, str]] = []
    thread = threading.Thread(
        target=lambda: results.append(
            launch_child(
                SANDBOX_PAYLOAD, _sleep_job(3), wall_time_s=120, max_result_bytes=1 << 20,
                zygote=True,
            )
        )
    )
    thread.start()
    deadline = time.monotonic() + 120
    first = None
    while time.monotonic() < deadline and first is None:
        candidate = zygote._shared
        if candidate is not None and candidate.pid is not None and _children(candidate.pid):
            first = candidate
        time.sleep(0.05)
    assert first is not None and first.pid is not None, "the job never reached the zygote"
    (fork,) = _children(first.pid)
    os.kill(first.pid, signal.SIGKILL)
    thread.join(timeout=300)
    assert results, "the job never ended"
    outcome, _ = results[0]
    assert outcome.returncode == 0, outcome.output_tail
    assert json.loads(outcome.result)["outcomes"][0]["ok"] is True
    # The fork of the dead zygote died with it (parent-death signal).
    _wait_gone(fork)


def test_a_zygote_that_cannot_start_says_why() -> None:
    broken = Zygote("evaluator.checkpoint.no_such_module")
    with pytest.raises(ZygoteUnavailable, match="did not start"):
        broken.start()
    assert not broken.alive()


def test_jobs_fall_back_to_a_fresh_process_when_no_zygote_starts(
    honest_archive: Path, prepared: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(zygote, "ZYGOTE_MODULE", "evaluator.checkpoint.no_such_module")
    run = run_checkpoint(honest_archive, prepared, "ctr,cvr", zygote=True)
    assert run.started == "fresh process"
    np.testing.assert_allclose(run.ctr, reference_outputs(honest_archive, prepared)[0], atol=1e-6)
    assert zygote.shared() is None


def _fd_job(parent: Zygote, sleep_s: float = 0) -> dict[str, Any]:
    outcome = parent.run(FD_PAYLOAD, {"sleep_s": sleep_s}, wall_time_s=120,
                         max_result_bytes=1 << 16)
    assert outcome.returncode == 0, outcome.output_tail
    report: dict[str, Any] = json.loads(outcome.result)
    return report


def test_a_fork_holds_only_its_own_pipes_even_beside_a_running_job(parent: Zygote) -> None:
    # A second job runs meanwhile: its pipes and reply socket are open in the zygote.
    other: list[dict[str, Any]] = []
    thread = threading.Thread(target=lambda: other.append(_fd_job(parent, sleep_s=3)))
    thread.start()
    deadline = time.monotonic() + 60
    assert parent.pid is not None
    while not _children(parent.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    report = _fd_job(parent)
    thread.join(timeout=120)
    # stdin, stdout and stderr (the output pipe), the result pipe; not the zygote's socket.
    assert report["fds"] == [0, 1, 2, RESULT_FD]
    assert report["ppid"] == parent.pid
    assert other and other[0]["fds"] == [0, 1, 2, RESULT_FD]
    assert other[0]["pid"] != report["pid"]


def test_a_job_runs_as_a_new_process_each_time(parent: Zygote) -> None:
    pids = {_fd_job(parent)["pid"] for _ in range(3)}
    assert len(pids) == 3
    assert parent.pid not in pids


def test_run_records_how_the_child_was_started(honest_archive: Path, prepared: Path) -> None:
    run: CheckpointRun = run_checkpoint(honest_archive, prepared, "ctr,cvr", zygote=False)
    assert run.started == "fresh process"
    assert zygote._shared is None


@pytest.mark.gpu
def test_a_fork_of_the_zygote_runs_on_the_gpu_like_the_cpu(
    honest_archive: Path, prepared: Path
) -> None:
    # The zygote never initialises CUDA; each fork initialises its own context.
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    cpu = run_checkpoint(honest_archive, prepared, "ctr,cvr", device="cpu", zygote=True)
    gpu = run_checkpoint(honest_archive, prepared, "ctr,cvr", device="cuda", zygote=True)
    again = run_checkpoint(honest_archive, prepared, "ctr,cvr", device="cuda", zygote=True)
    assert gpu.started == again.started == "zygote"
    assert gpu.device.startswith("cuda")
    np.testing.assert_allclose(gpu.ctr, cpu.ctr, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(again.ctr, gpu.ctr)
