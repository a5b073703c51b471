"""The batched loop and the output checks, in this process (no sandbox needed for these)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from evaluator.checkpoint.inference import (
    CALIBRATION_BUDGET,
    CPU_CANDIDATES,
    DEFAULT_CPU_BATCH,
    WARMUP_CALLS,
    BatchPlan,
    OutputError,
    check_values,
    output_columns,
    predict,
    predict_timed,
)

NAMES = ("ctr", "cvr")


def _features(rows: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return (
        rng.integers(0, 50, size=(rows, 16)).astype(np.int32),
        rng.random((rows, 63), dtype=np.float32),
    )


def test_a_two_column_tensor_is_accepted() -> None:
    out = torch.rand(5, 2)
    assert torch.equal(output_columns(out, 5, NAMES), out)


def test_a_list_of_column_tensors_is_stacked_in_order() -> None:
    ctr, cvr = torch.rand(5), torch.rand(5)
    assert torch.equal(output_columns([ctr, cvr], 5, NAMES), torch.stack([ctr, cvr], dim=1))


def test_a_single_column_output_names_its_shape_and_the_expected_one() -> None:
    with pytest.raises(OutputError, match=r"shape \[B, 1\], expected \[B, 2\] \(ctr, cvr\)"):
        output_columns(torch.rand(5, 1), 5, NAMES)


def test_an_output_with_the_wrong_row_count_is_refused() -> None:
    with pytest.raises(OutputError, match=r"shape \[4, 2\], expected \[B, 2\].*B = 5"):
        output_columns(torch.rand(4, 2), 5, NAMES)


def test_a_tuple_with_too_few_items_is_refused() -> None:
    with pytest.raises(OutputError, match="tuple of 1 items"):
        output_columns((torch.rand(5),), 5, NAMES)


def test_column_tensors_of_shape_b_by_1_are_refused() -> None:
    with pytest.raises(OutputError, match=r"output cvr has shape \[B, 1\], expected \[B\]"):
        output_columns([torch.rand(5), torch.rand(5, 1)], 5, NAMES)


def test_a_dict_output_is_refused() -> None:
    with pytest.raises(OutputError, match="output is a dict"):
        output_columns({"ctr": torch.rand(5)}, 5, NAMES)


def test_integer_outputs_are_refused() -> None:
    with pytest.raises(OutputError, match=r"dtype torch\.int64"):
        output_columns(torch.ones(5, 2, dtype=torch.int64), 5, NAMES)


def test_values_outside_the_unit_interval_are_refused_with_the_first_row() -> None:
    out = torch.rand(2, 10, dtype=torch.float64)
    out[0, 7] = 1.5
    out[0, 8] = -0.1
    with pytest.raises(OutputError, match=r"ctr is outside \[0, 1\] at 2 rows \(first row_id 7"):
        check_values(out, NAMES)


def test_infinite_values_are_refused() -> None:
    out = torch.rand(2, 10, dtype=torch.float64)
    out[1, 2] = float("inf")
    with pytest.raises(OutputError, match=r"cvr is not a finite number at 1 row \(first row_id 2"):
        check_values(out, NAMES)


def test_batched_prediction_equals_one_big_forward() -> None:
    categorical, numerical = _features(1000)
    torch.manual_seed(0)
    linear = torch.nn.Linear(63, 2)

    def model(cat: torch.Tensor, num: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(linear(num) + cat[:, :2].float() / 100)

    got = predict(model, categorical, numerical, NAMES, torch.device("cpu"), batch_size=96)
    with torch.inference_mode():
        want = model(torch.from_numpy(categorical).long(), torch.from_numpy(numerical))
    np.testing.assert_allclose(got, want.double().numpy().T, rtol=0, atol=1e-6)


def test_the_model_gets_int64_categoricals_and_float32_numericals() -> None:
    categorical, numerical = _features(10)
    seen: list[tuple[torch.dtype, torch.dtype, tuple[int, ...], tuple[int, ...]]] = []

    def model(cat: torch.Tensor, num: torch.Tensor) -> torch.Tensor:
        seen.append((cat.dtype, num.dtype, tuple(cat.shape), tuple(num.shape)))
        return torch.full((cat.shape[0], 2), 0.5)

    predict(model, categorical, numerical, NAMES, torch.device("cpu"), batch_size=4)
    assert seen == [
        (torch.int64, torch.float32, (4, 16), (4, 63)),
        (torch.int64, torch.float32, (4, 16), (4, 63)),
        (torch.int64, torch.float32, (2, 16), (2, 63)),
    ]


def test_a_model_writing_into_its_inputs_does_not_change_the_test_set() -> None:
    categorical, numerical = _features(10)
    before = numerical.copy()

    def model(cat: torch.Tensor, num: torch.Tensor) -> torch.Tensor:
        num.fill_(7.0)
        return torch.full((cat.shape[0], 2), 0.5)

    predict(model, categorical, numerical, NAMES, torch.device("cpu"), batch_size=4)
    np.testing.assert_array_equal(numerical, before)


class _Clock:
    """Time that passes only when the model below runs: calibration tests without timing."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _costed_model(clock: _Clock, seconds_per_row: dict[int, float], calls: list[int]) -> Any:
    """A deterministic model that takes `seconds_per_row[B]` per row at batch size B."""
    torch.manual_seed(0)
    linear = torch.nn.Linear(63, 2)

    def model(cat: torch.Tensor, num: torch.Tensor) -> torch.Tensor:
        rows = cat.shape[0]
        calls.append(rows)
        clock.now += rows * seconds_per_row.get(rows, 1.0)
        return torch.sigmoid(linear(num) + cat[:, :2].float() / 100)

    return model


# Per-row cost by batch size: 64 is the fastest, neither the smallest nor the largest.
COSTS = {16: 4e-6, 32: 2e-6, 64: 1e-6, 128: 3e-6}


def _drive(plan: BatchPlan, model: Any, n_rows: int) -> None:
    start = 0
    while start < n_rows:
        rows = min(plan.next_size(), n_rows - start)
        model(torch.zeros(rows, 16, dtype=torch.int64), torch.zeros(rows, 63))
        plan.done(rows)
        start += rows


def test_calibration_picks_the_fastest_candidate_and_runs_the_rest_with_it() -> None:
    clock = _Clock()
    calls: list[int] = []
    model = _costed_model(clock, COSTS, calls)
    plan = BatchPlan(10_000, 0, (128, 16, 64, 32), default=50, clock=clock, sample_rows=256,
                     rounds=2, keep_ratio=0.7, budget=0.5)
    _drive(plan, model, 10_000)
    assert plan.chosen == 64
    assert dict(plan.calibration) == pytest.approx({b: 1 / c for b, c in COSTS.items()})
    # Round 1: a 256-row sample of each, ascending; round 2: only those within 70 % of the best.
    expected = [16] * 16 + [32] * 8 + [64] * 4 + [128] * 2 + [64] * 4
    assert calls[: len(expected)] == expected
    assert set(calls[len(expected) : -1]) == {64}


def test_a_candidate_slowed_down_once_is_judged_by_its_best_sample() -> None:
    clock = _Clock()
    calls: list[int] = []
    model = _costed_model(clock, COSTS, calls)
    stalled: list[bool] = []

    def busy_machine(cat: torch.Tensor, num: torch.Tensor) -> Any:
        # The machine is busy during the fastest candidate's first sample, not its second.
        if cat.shape[0] == 64 and not stalled:
            stalled.append(True)
            clock.now += 10.0
        return model(cat, num)

    plan = BatchPlan(10_000, 0, (16, 64), default=50, clock=clock, sample_rows=256, rounds=2,
                     keep_ratio=0.0, budget=0.5)
    _drive(plan, busy_machine, 10_000)
    assert stalled
    assert plan.chosen == 64
    assert dict(plan.calibration) == pytest.approx({16: 1 / COSTS[16], 64: 1 / COSTS[64]})
    assert calls[:52] == [16] * 16 + [64] * 4 + [16] * 16 + [64] * 4 + [64] * 12


def test_the_first_round_takes_the_candidates_that_fit_in_the_budget() -> None:
    # 10 % of 2,600 rows: 260. A 128-row sample each: 16 and 64 (256 rows) fit, 128 does not.
    plan = BatchPlan(2600, 0, (16, 64, 128), default=50, sample_rows=128, rounds=2, budget=0.1)
    assert plan.max_size == 64
    tiny = BatchPlan(100, 0, (64,), default=50, sample_rows=128)
    assert (tiny.chosen, tiny.max_size, tiny.calibration) == (50, 50, ())


def test_a_lone_candidate_is_not_timed_and_the_default_runs() -> None:
    # Only 16 fits: timing it alone would choose it without a comparison.
    plan = BatchPlan(2000, 0, (16, 64), default=50, sample_rows=128, budget=0.1)
    assert (plan.chosen, plan.max_size, plan.calibration) == (50, 50, ())
    assert [plan.next_size() for _ in range(2)] == [50, 50]


def test_later_rounds_stay_within_the_budget_and_all_calibration_does() -> None:
    clock = _Clock()
    calls: list[int] = []
    # 32 and 64 run at the same rate: both stay in the race after round 1.
    model = _costed_model(clock, {16: 4e-6, 32: 1e-6, 64: 1e-6}, calls)
    # Budget 700 rows; round 1: 128 + 128 + 128 = 384; round 2 has 316 left: 32 and 64 (256).
    plan = BatchPlan(7000, 0, (16, 32, 64), default=50, clock=clock, sample_rows=128,
                     rounds=3, keep_ratio=0.7, budget=0.1)
    _drive(plan, model, 7000)
    # Round 3 would need 256 more rows, with 60 left: it does not run.
    assert calls[:28] == [16] * 8 + [32] * 4 + [64] * 2 + [32] * 4 + [64] * 2 + [plan.chosen] * 8
    assert plan.calibration_rows == 640 <= 700
    assert plan.chosen in (32, 64)


def test_a_given_batch_size_is_used_without_calibration() -> None:
    plan = BatchPlan(100_000, 96, (16, 32), default=50)
    assert [plan.next_size() for _ in range(3)] == [96, 96, 96]
    assert plan.calibration == ()


def test_a_calibrated_pass_gives_every_row_once_in_order() -> None:
    # Enough rows for every candidate's calibration (CALIBRATION_ROWS each) in the first half.
    categorical, numerical = _features(80_000)
    clock = _Clock()
    calls: list[int] = []
    model = _costed_model(clock, COSTS, calls)
    got, timing = predict_timed(
        model, categorical, numerical, NAMES, torch.device("cpu"), 0,
        candidates=(16, 32, 64, 128), clock=clock,
    )
    with torch.inference_mode():
        want = model(torch.from_numpy(categorical).long(), torch.from_numpy(numerical))
    np.testing.assert_allclose(got, want.double().numpy().T, rtol=0, atol=1e-6)
    assert timing.batch_size == 64
    assert [b for b, _ in timing.calibration] == [16, 32, 64, 128]


def test_the_warm_up_runs_first_on_the_first_rows_and_is_timed_apart() -> None:
    categorical, numerical = _features(1000)
    clock = _Clock()
    calls: list[int] = []
    model = _costed_model(clock, {100: 1e-3, 1000: 1e-3}, calls)
    got, timing = predict_timed(model, categorical, numerical, NAMES, torch.device("cpu"), 100,
                                clock=clock)
    # Two warm-up calls on the first batch, then the ten batches of the pass.
    assert calls == [100] * (WARMUP_CALLS + 10)
    assert timing.warmup_s == pytest.approx(WARMUP_CALLS * 100 * 1e-3)
    assert timing.forward_s == pytest.approx(10 * 100 * 1e-3)
    assert timing.batch_size == 100
    assert got.shape == (2, 1000)


def test_the_warm_up_pays_for_the_largest_batch_before_the_clock() -> None:
    categorical, numerical = _features(80_000)
    clock = _Clock()
    calls: list[int] = []
    model = _costed_model(clock, COSTS, calls)
    _, timing = predict_timed(model, categorical, numerical, NAMES, torch.device("cpu"), 0,
                              candidates=(16, 32, 64, 128), clock=clock)
    # The first call on the first batch's rows, the second on as many as the largest candidate;
    # then the calibration, whose first sample is of the smallest.
    assert calls[:3] == [16, 128, 16]
    assert timing.warmup_s == pytest.approx(16 * COSTS[16] + 128 * COSTS[128])


def test_at_200k_rows_the_default_calibration_takes_at_most_a_tenth_of_them() -> None:
    clock = _Clock()
    calls: list[int] = []
    # Every CPU candidate at the same rate: all stay in the race as long as the budget allows.
    model = _costed_model(clock, dict.fromkeys(CPU_CANDIDATES, 1e-6), calls)
    plan = BatchPlan(200_000, 0, CPU_CANDIDATES, default=DEFAULT_CPU_BATCH, clock=clock)
    assert plan.max_size == 8192
    _drive(plan, model, 200_000)
    assert [b for b, _ in plan.calibration] == [1024, 2048, 4096, 8192]
    assert plan.calibration_rows <= CALIBRATION_BUDGET * 200_000
