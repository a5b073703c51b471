"""The exported checkpoint and prediction file against the evaluator's own checks
(baselines/export.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from baselines_factories import FIELD_DIMS, TINY_ARCH, random_inputs

from baselines.data import CountryData
from baselines.export import ExportError, export_torchscript, predict, write_predictions
from baselines.models import build_model
from evaluator.checkpoint import check_archive, parse_outputs, run_checkpoint
from evaluator.predictions import parse_prediction_file

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_export_round_trip_gives_identical_outputs(tmp_path: Path) -> None:
    model = build_model("aitm", FIELD_DIMS, TINY_ARCH)
    loaded = export_torchscript(model, tmp_path / "m.pt", random_inputs(16))
    inputs = random_inputs(100, seed=5)
    with torch.inference_mode():
        assert torch.equal(loaded(*inputs), model.eval()(*inputs))


def test_export_leaves_the_trained_model_where_it_was(tmp_path: Path) -> None:
    model = build_model("dnn", FIELD_DIMS, TINY_ARCH).train()
    export_torchscript(model, tmp_path / "m.pt", random_inputs(4))
    assert model.training


@pytest.mark.parametrize("run_name", ["esmm_run", "mmoe_run"])
def test_the_exported_archive_passes_the_evaluators_archive_check(
    run_name: str, request: pytest.FixtureRequest
) -> None:
    run: Path = request.getfixturevalue(run_name)
    check_archive(run / "model.pt")


@pytest.mark.parametrize("run_name", ["esmm_run", "mmoe_run"])
def test_the_sandboxed_evaluator_reproduces_the_prediction_file(
    run_name: str, request: pytest.FixtureRequest, nl_data: CountryData
) -> None:
    run: Path = request.getfixturevalue(run_name)
    outputs = parse_outputs(",".join(json.loads((run / "summary.json").read_text())["outputs"]))
    result = run_checkpoint(run / "model.pt", nl_data.test.path, outputs, device="cpu")
    submitted = parse_prediction_file(run / "predictions.csv.gz", nl_data.test.n_rows)
    np.testing.assert_allclose(result.ctr, submitted.ctr, rtol=0, atol=1e-6)
    np.testing.assert_allclose(result.cvr, submitted.cvr, rtol=0, atol=1e-6)
    np.testing.assert_allclose(result.ctcvr, submitted.ctcvr, rtol=0, atol=1e-6)


def test_predict_calls_the_model_on_every_row_in_order(nl_data: CountryData) -> None:
    model = build_model("mmoe", nl_data.field_dims, TINY_ARCH).eval()
    out = predict(model, nl_data.test, batch_size=700)
    categorical = torch.from_numpy(np.array(nl_data.test.categorical[:5], np.int64))
    numerical = torch.from_numpy(np.array(nl_data.test.numerical[:5]))
    with torch.inference_mode():
        expected = model(categorical, numerical).numpy()
    assert out.shape == (nl_data.test.n_rows, 2)
    np.testing.assert_allclose(out[:5], expected, rtol=0, atol=1e-6)


def test_the_prediction_file_parses_under_the_evaluators_rules(tmp_path: Path) -> None:
    predictions = np.random.default_rng(0).random((50, 3)).astype(np.float32)
    path = tmp_path / "p.csv.gz"
    write_predictions(path, ("ctr", "cvr", "ctcvr"), predictions)
    parsed = parse_prediction_file(path, 50)
    # Nine significant digits bring every float32 back exactly: the file ranks as the model does.
    np.testing.assert_array_equal(parsed.ctr.astype(np.float32), predictions[:, 0])
    np.testing.assert_array_equal(parsed.ctcvr.astype(np.float32), predictions[:, 2])


def test_write_predictions_refuses_columns_that_do_not_match(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="do not match"):
        write_predictions(tmp_path / "p.csv", ("ctr", "ctcvr"), np.zeros((4, 3), np.float32))


def test_an_archive_that_does_not_reproduce_the_model_is_refused(tmp_path: Path) -> None:
    class Unstable(torch.nn.Module):
        def forward(self, categorical: torch.Tensor, numerical: torch.Tensor) -> torch.Tensor:
            return torch.rand(categorical.shape[0], 2)

    with pytest.raises(ExportError, match="differs"):
        export_torchscript(Unstable(), tmp_path / "m.pt", random_inputs(4))
