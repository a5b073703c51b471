"""`run_checkpoint` end to end on an honest checkpoint, and the public helpers around it."""

from __future__ import annotations

import signal
from pathlib import Path

import numpy as np
import pytest
from checkpoint_factories import honest_model, make_prepared, reference_outputs, save
from sklearn.metrics import roc_auc_score

from evaluator.checkpoint import (
    CheckpointFailed,
    CheckpointRun,
    Limits,
    _failure_reason,
    batch_memory,
    derive_probabilities,
    parse_outputs,
    run_checkpoint,
)
from evaluator.checkpoint.inference import CALIBRATION_BUDGET, CPU_CANDIDATES
from evaluator.checkpoint.sandbox import ChildOutcome
from evaluator.data.prepared import PreparedData
from evaluator.predictions import parse_prediction_file
from evaluator.scoring import score_predictions

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def honest_run(honest_archive: Path, prepared: Path) -> CheckpointRun:
    # A batch size that does not divide the 600 rows exercises the short last batch.
    return run_checkpoint(honest_archive, prepared, "ctr,cvr", batch_size=128)


def test_an_honest_checkpoint_gives_its_own_outputs(
    honest_run: CheckpointRun, honest_archive: Path, prepared: Path
) -> None:
    expected = reference_outputs(honest_archive, prepared)
    np.testing.assert_allclose(honest_run.ctr, expected[0], rtol=0, atol=1e-6)
    np.testing.assert_allclose(honest_run.cvr, expected[1], rtol=0, atol=1e-6)
    np.testing.assert_allclose(honest_run.ctcvr, expected[0] * expected[1], rtol=0, atol=1e-6)


def test_an_honest_run_records_torch_version_device_and_duration(
    honest_run: CheckpointRun,
) -> None:
    import torch

    assert honest_run.torch_version == torch.__version__
    assert honest_run.device.startswith("cpu")
    assert honest_run.duration_s > honest_run.inference_s > 0


def test_an_honest_run_reports_the_sandbox_it_ran_in(honest_run: CheckpointRun) -> None:
    assert "network namespace" in honest_run.sandbox
    assert "rlimits" in honest_run.sandbox
    assert any(item.startswith("landlock") for item in honest_run.sandbox)


def test_an_honest_checkpoint_scores_like_its_predictions_uploaded_as_a_file(
    honest_run: CheckpointRun, honest_archive: Path, prepared: Path, tmp_path: Path
) -> None:
    expected = reference_outputs(honest_archive, prepared)
    data = PreparedData.open(prepared)
    file = tmp_path / "predictions.csv"
    lines = ["row_id,ctr,cvr"]
    lines += [f"{i},{ctr!r},{cvr!r}" for i, (ctr, cvr) in enumerate(expected.T.tolist())]
    file.write_text("\n".join(lines) + "\n")
    from_file = score_predictions(data, parse_prediction_file(file, data.n_rows))
    from_checkpoint = score_predictions(data, honest_run.to_predictions())
    for split, tasks in from_file.scores.items():
        for task, score in tasks.items():
            other = from_checkpoint.scores[split][task]
            assert (score.auc is None) == (other.auc is None), (split, task)
            if score.auc is not None and other.auc is not None:
                assert abs(score.auc - other.auc) < 1e-9, (split, task)


def test_the_ctr_auc_of_a_run_matches_sklearn_on_the_models_own_outputs(
    honest_run: CheckpointRun, honest_archive: Path, prepared: Path
) -> None:
    expected = reference_outputs(honest_archive, prepared)
    click = np.asarray(PreparedData.open(prepared).click)
    assert roc_auc_score(click, honest_run.ctr) == pytest.approx(
        roc_auc_score(click, expected[0]), abs=1e-9
    )


def test_declared_ctr_ctcvr_outputs_give_cvr_as_their_ratio(
    honest_archive: Path, prepared: Path
) -> None:
    run = run_checkpoint(honest_archive, prepared, "ctr,ctcvr")
    expected = reference_outputs(honest_archive, prepared)
    np.testing.assert_allclose(run.ctcvr, expected[1], rtol=0, atol=1e-6)
    np.testing.assert_allclose(
        run.cvr, np.minimum(expected[1] / expected[0], 1.0), rtol=0, atol=1e-5
    )
    assert run.to_predictions().columns == ("row_id", "ctr", "ctcvr")


def test_three_declared_outputs_are_taken_as_given(tmp_path: Path, prepared: Path) -> None:
    archive = save(honest_model(seed=1, tasks=3), tmp_path / "three.pt")
    run = run_checkpoint(archive, prepared, "ctr,cvr,ctcvr")
    expected = reference_outputs(archive, prepared)
    for got, want in zip((run.ctr, run.cvr, run.ctcvr), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


def test_derived_cvr_is_zero_where_ctr_is_zero_and_capped_at_one() -> None:
    ctr = np.array([0.0, 0.5, 0.2])
    ctcvr = np.array([0.0, 0.25, 0.3])
    _, cvr, same = derive_probabilities(ctr, ctcvr, None, "ctr,ctcvr")
    np.testing.assert_array_equal(cvr, [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(same, ctcvr)


def test_derived_ctcvr_is_the_product_of_ctr_and_cvr() -> None:
    ctr = np.array([0.1, 0.5])
    cvr = np.array([0.5, 0.2])
    _, _, ctcvr = derive_probabilities(ctr, cvr, None, "ctr,cvr")
    np.testing.assert_allclose(ctcvr, [0.05, 0.1])


@pytest.mark.parametrize(
    ("text", "expected"),
    [("ctr,cvr", "ctr,cvr"), (" CTR, ctcvr ", "ctr,ctcvr"), ("ctr,cvr,ctcvr", "ctr,cvr,ctcvr")],
)
def test_declared_outputs_are_normalised(text: str, expected: str) -> None:
    assert parse_outputs(text) == expected


@pytest.mark.parametrize("text", ["cvr,ctr", "ctr", "ctr,cvr,ctcvr,x", ""])
def test_unknown_declared_outputs_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="expected one of ctr,cvr, ctr,ctcvr, ctr,cvr,ctcvr"):
        parse_outputs(text)


@pytest.mark.gpu
def test_an_honest_checkpoint_on_the_gpu_matches_the_cpu_run(
    honest_run: CheckpointRun, honest_archive: Path, prepared: Path
) -> None:
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    run = run_checkpoint(honest_archive, prepared, "ctr,cvr", device="cuda", batch_size=128)
    assert run.device.startswith("cuda")
    np.testing.assert_allclose(run.ctr, honest_run.ctr, rtol=0, atol=1e-5)
    np.testing.assert_allclose(run.cvr, honest_run.cvr, rtol=0, atol=1e-5)


def _ended(
    *,
    returncode: int | None = None,
    term_signal: int | None = None,
    cpu_s: float = 1.0,
    max_rss_bytes: int = 100 << 20,
    wall_timed_out: bool = False,
    output_tail: str = "",
) -> ChildOutcome:
    return ChildOutcome(
        returncode=returncode,
        term_signal=term_signal,
        cpu_s=cpu_s,
        max_rss_bytes=max_rss_bytes,
        wall_s=2.0,
        wall_timed_out=wall_timed_out,
        result=b"",
        result_overflow=False,
        output_tail=output_tail,
    )


LIMITS = Limits(wall_time_s=60, cpu_time_s=30, memory_bytes=2 << 30)


@pytest.mark.parametrize(
    ("outcome", "reason"),
    [
        (_ended(wall_timed_out=True, term_signal=9),
         "time limit: the run took longer than its wall-clock limit of 60 s"),
        # Killed at the wall limit with much memory in use (a memory-mapped test set counts):
        # still time.
        (_ended(wall_timed_out=True, term_signal=9, max_rss_bytes=2 << 30),
         "time limit: the run took longer than its wall-clock limit of 60 s"),
        (_ended(term_signal=signal.SIGXCPU), "time limit: the run used more than 30 s of CPU"),
        (_ended(term_signal=signal.SIGKILL, cpu_s=30.5), "time limit: the run used more than 30"),
        # A SIGKILL from outside is not a limit of the sandbox's: the resident size alone does
        # not make it memory (it counts the mapped test set).
        (
            _ended(term_signal=signal.SIGKILL, max_rss_bytes=2 << 30),
            "killed by signal 9 (SIGKILL) from outside the sandbox",
        ),
        (_ended(term_signal=signal.SIGSEGV), "killed by signal 11 (SIGSEGV)"),
        (_ended(term_signal=signal.SIGABRT, output_tail="terminate: std::bad_alloc\n"),
         "memory limit: the model needed more than the 2 GiB allowed"),
        (
            _ended(returncode=1, output_tail="Traceback...\nRuntimeError: /etc/shadow boom\n"),
            "bad output: the run ended (exit code 1) without sending its predictions",
        ),
    ],
)
def test_how_a_child_ended_becomes_a_reason(outcome: ChildOutcome, reason: str) -> None:
    assert _failure_reason(outcome, None, LIMITS).startswith(reason)
    assert "/etc" not in _failure_reason(outcome, None, LIMITS)


def test_a_reason_reported_by_the_child_is_composed_from_its_category() -> None:
    header = {"status": "failed", "category": "bad_output",
              "detail": "output has shape [B, 1], expected [B, 2]"}
    assert _failure_reason(_ended(returncode=3), header, LIMITS) == (
        "bad output: output has shape [B, 1], expected [B, 2]")


def test_a_sandbox_failure_is_labelled_as_the_evaluators_fault() -> None:
    header = {"status": "failed", "category": "evaluator",
              "detail": "the sandbox could not be set up", "sandbox": True}
    assert _failure_reason(_ended(returncode=4), header, LIMITS).startswith("evaluator error")


def test_free_text_from_a_compromised_child_does_not_reach_the_reason() -> None:
    header = {"status": "failed", "category": "file_access", "detail": "root:x:0:0:/root",
              "reason": "root:x:0:0:root:/root:/bin/bash"}
    assert _failure_reason(_ended(returncode=3), header, LIMITS) == (
        "file access refused: a checkpoint may not read or write files")
    header = {"status": "failed", "category": "no such category", "reason": "secret"}
    assert "secret" not in _failure_reason(_ended(returncode=3), header, LIMITS)


@pytest.fixture
def forged_child(monkeypatch: pytest.MonkeyPatch) -> None:
    """Replace the child by a compromised one (a real process, see forged_child.py)."""
    import evaluator.checkpoint

    monkeypatch.setattr(
        evaluator.checkpoint, "CHILD_MODULE", "tests.evaluator.checkpoint.forged_child"
    )


@pytest.mark.usefixtures("forged_child")
@pytest.mark.parametrize(
    ("forgery", "reason"),
    [
        ("nan", r"^bad output: predictions outside \[0, 1\] or not finite"),
        ("short", r"^bad output: received \d+ bytes of predictions, expected"),
    ],
)
def test_a_compromised_child_cannot_slip_bad_predictions_past_the_parent(
    forgery: str, reason: str, honest_archive: Path, prepared: Path, tmp_path: Path
) -> None:
    archive = tmp_path / f"{forgery}.pt"
    archive.write_bytes(honest_archive.read_bytes())
    with pytest.raises(CheckpointFailed, match=reason):
        run_checkpoint(archive, prepared, "ctr,cvr")


@pytest.mark.usefixtures("forged_child")
def test_what_a_compromised_child_says_about_itself_is_bounded(
    honest_archive: Path, prepared: Path, tmp_path: Path
) -> None:
    archive = tmp_path / "long.pt"
    archive.write_bytes(honest_archive.read_bytes())
    run = run_checkpoint(archive, prepared, "ctr,cvr")
    assert len(run.device) == 200
    assert run.torch_version == ""
    assert run.inference_s == 0.0
    assert run.sandbox == ()


def test_the_thread_count_can_be_set_and_is_recorded(honest_archive: Path, prepared: Path) -> None:
    run = run_checkpoint(honest_archive, prepared, "ctr,cvr", threads=1)
    assert run.device == "cpu (1 thread)"
    assert run.cpu_s > 0


@pytest.fixture()
def calibrating_prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Enough rows that the two smallest CPU candidates fit in the calibration's budget.
    rows = int((CPU_CANDIDATES[0] + CPU_CANDIDATES[1]) / CALIBRATION_BUDGET) + 1000
    return make_prepared(tmp_path_factory.mktemp("calibrating"), rows=rows)


def test_a_second_run_of_the_same_archive_reuses_the_batch_its_calibration_chose(
    tmp_path: Path, calibrating_prepared: Path
) -> None:
    batch_memory.clear()
    archive = save(honest_model(), tmp_path / "honest.pt")
    first = run_checkpoint(archive, calibrating_prepared, "ctr,cvr", device="cpu", threads=1)
    assert first.calibration and not first.batch_remembered
    second = run_checkpoint(archive, calibrating_prepared, "ctr,cvr", device="cpu", threads=1)
    assert second.batch_remembered
    assert second.calibration == ()
    assert second.batch_size == first.batch_size
    np.testing.assert_array_equal(second.ctr, first.ctr)
    # Another archive (other bytes), other threads, or a batch size given: no memory applies.
    other = save(honest_model(seed=1), tmp_path / "other.pt")
    assert not run_checkpoint(other, calibrating_prepared, "ctr,cvr", device="cpu",
                              threads=1).batch_remembered
    assert run_checkpoint(archive, calibrating_prepared, "ctr,cvr", device="cpu",
                          threads=2).calibration
    given = run_checkpoint(archive, calibrating_prepared, "ctr,cvr", device="cpu", threads=1,
                           batch_size=100)
    assert (given.batch_size, given.batch_remembered) == (100, False)
    batch_memory.clear()


def test_only_a_batch_size_the_child_reports_having_timed_is_remembered() -> None:
    key = ("cpu", 1, "0" * 64)
    batch_memory.clear()
    batch_memory.remember(key, 4096, ((1024, 1.0), (2048, 2.0)))
    assert batch_memory.get(key) == 0
    batch_memory.remember(key, 2048, ((1024, 1.0), (2048, 2.0)))
    assert batch_memory.get(key) == 2048
    batch_memory.clear()
