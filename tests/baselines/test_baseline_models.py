"""The seven models: shapes, ranges, TorchScript, unseen indices (baselines/models/)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from baselines_factories import FIELD_DIMS, TINY_ARCH, random_inputs

from baselines.config import MODEL_NAMES, ModelConfig, ModelName
from baselines.models import OUTPUTS, build_model

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _model(name: ModelName, arch: ModelConfig = TINY_ARCH) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(name, FIELD_DIMS, arch)


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_forward_gives_one_probability_per_output_and_row(name: ModelName, mode: str) -> None:
    model = _model(name).train(mode == "train")
    out = model(*random_inputs(32))
    assert out.shape == (32, len(OUTPUTS[name]))
    assert out.dtype == torch.float32
    assert bool(((out > 0) & (out < 1)).all())


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_reference_sizes_build_and_run(name: ModelName) -> None:
    model = _model(name, ModelConfig()).eval()
    out = model(*random_inputs(4))
    assert out.shape == (4, len(OUTPUTS[name]))


def test_reference_mmoe_has_the_libraries_parameter_count() -> None:
    # notes §2: MMoE about 10.1 M parameters besides the embedding table.
    model = _model("mmoe", ModelConfig())
    table = sum(FIELD_DIMS) * 128
    n_params = sum(p.numel() for p in model.parameters()) - table
    assert 10.0e6 < n_params < 10.2e6


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_torchscript_round_trip_gives_identical_outputs(name: ModelName, tmp_path: Path) -> None:
    model = _model(name).eval()
    path = tmp_path / "model.pt"
    torch.jit.save(torch.jit.script(model), str(path))
    # torch ships torch.jit.load without annotations.
    loaded = torch.jit.load(str(path))  # type: ignore[no-untyped-call]
    inputs = random_inputs(64, seed=1)
    with torch.inference_mode():
        assert torch.equal(model(*inputs), loaded(*inputs))


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_an_index_past_the_table_is_read_as_the_last_entry(name: ModelName) -> None:
    model = _model(name).eval()
    categorical, numerical = random_inputs(8)
    at_edge = categorical.clone()
    at_edge[:, 6] = FIELD_DIMS[6] - 1
    past = categorical.clone()
    past[:, 6] = 10_000
    with torch.inference_mode():
        assert torch.equal(model(past, numerical), model(at_edge, numerical))


def test_a_negative_index_is_read_as_the_first_entry() -> None:
    model = _model("mmoe").eval()
    categorical, numerical = random_inputs(8)
    negative, zero = categorical.clone(), categorical.clone()
    negative[:, 3], zero[:, 3] = -5, 0
    with torch.inference_mode():
        assert torch.equal(model(negative, numerical), model(zero, numerical))


def test_int32_categoricals_give_the_same_outputs_as_int64() -> None:
    model = _model("ple").eval()
    categorical, numerical = random_inputs(8)
    with torch.inference_mode():
        assert torch.equal(model(categorical.int(), numerical), model(categorical, numerical))


def test_esmm_ctcvr_is_the_product_of_ctr_and_cvr() -> None:
    out = _model("esmm").eval()(*random_inputs(16))
    torch.testing.assert_close(out[:, 2], out[:, 0] * out[:, 1], rtol=0, atol=0)


def test_only_esmm_declares_a_cvr_output() -> None:
    assert OUTPUTS["esmm"] == ("ctr", "cvr", "ctcvr")
    assert all(OUTPUTS[name] == ("ctr", "ctcvr") for name in MODEL_NAMES if name != "esmm")
