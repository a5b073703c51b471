"""The operator allow-list against the registry of every operator torch knows, and the check on
loaded models (in this process: the check needs no sandbox, and the models here never run)."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
import torch
from checkpoint_factories import honest_model
from confinement_factories import (
    EntersAContext,
    HidesAnUnsafeViewDeep,
    ReinterpretsMemory,
    SortsObjects,
    SparseBuffer,
    SparseInAList,
    UninitialisedMemory,
    UnusedMethodReadsFiles,
)
from torch import nn

from baselines.config import ModelConfig
from baselines.models import DISPLAY_NAMES, build_model
from evaluator.checkpoint.allowed_ops import ALLOWED_OPS
from evaluator.checkpoint.allowlist import (
    ALLOWED_NAMESPACES,
    STRUCTURAL_KINDS,
    OperatorRefused,
    candidate_list,
    check_loaded_model,
    deny_reason,
    is_allowed,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

REGISTERED = frozenset(schema.name for schema in torch._C._jit_get_all_schemas())


def _loaded(module: torch.jit.ScriptModule) -> torch.jit.ScriptModule:
    buffer = io.BytesIO()
    torch.jit.save(module, buffer)
    # torch ships torch.jit.load without annotations.
    loaded: torch.jit.ScriptModule = torch.jit.load(  # type: ignore[no-untyped-call]
        io.BytesIO(buffer.getvalue())
    )
    return loaded


def test_every_allowed_operator_is_aten_or_prim_and_in_no_deny_family() -> None:
    for name in ALLOWED_OPS | STRUCTURAL_KINDS:
        assert name.split("::")[0] in ALLOWED_NAMESPACES, name
        assert deny_reason(name) is None, (name, deny_reason(name))


def test_every_listed_operator_is_one_torch_registers() -> None:
    # A name torch does not know would be a typo, or an operator whose meaning changed.
    assert ALLOWED_OPS <= REGISTERED


def test_no_registered_operator_outside_the_list_is_allowed() -> None:
    # The language's own node kinds (tuples, raise...) are registered too, and allowed.
    outside = REGISTERED - ALLOWED_OPS - STRUCTURAL_KINDS
    assert len(outside) > 1000
    assert not [name for name in outside if is_allowed(name)]
    other_namespaces = {n for n in REGISTERED if n.split("::")[0] not in ALLOWED_NAMESPACES}
    assert other_namespaces and other_namespaces <= outside


def test_the_list_is_what_the_families_give_for_this_torch() -> None:
    # A torch upgrade that adds operators leaves them refused until the list is regenerated
    # and reviewed (python -m evaluator.checkpoint.allowlist); this says when that is due.
    assert set(candidate_list(REGISTERED)) == set(ALLOWED_OPS)


@pytest.mark.parametrize(
    "name",
    [
        "inductor::_reinterpret_tensor",
        "aten::set_",
        "aten::as_strided",
        "aten::as_strided_",
        "aten::as_strided_scatter",
        "aten::_reshape_alias",
        "aten::_unsafe_view",
        "aten::_index_put_impl_",
        "aten::_efficientzerotensor",
        "aten::empty",
        "aten::empty_strided",
        "aten::from_file",
        "aten::save",
        "aten::sparse_coo_tensor",
        "aten::_sparse_coo_tensor_unsafe",
        "aten::slice_inverse",
        "aten::segment_reduce",
        "aten::lu_unpack",
        "aten::wait",
        "prim::id",
        "prim::rpc_async",
        "prim::fork",
        "quantized::linear",
        "c10d::allreduce_",
        "debugprims::load_tensor",
    ],
)
def test_operators_that_reach_memory_files_or_processes_are_refused(name: str) -> None:
    assert not is_allowed(name)
    assert deny_reason(name) is not None


@pytest.mark.parametrize("name", sorted(DISPLAY_NAMES))
@pytest.mark.parametrize("how", ["script", "trace"])
def test_the_reference_models_pass_the_check(name: str, how: str) -> None:
    cfg = ModelConfig(embed_dim=4, bottom_dims=(8,), tower_dims=(4,), n_experts=2,
                      ple_shared_experts=1, ple_task_experts=1)
    model = build_model(name, [10] * 16, cfg).eval()  # type: ignore[arg-type]
    example = (torch.zeros(4, 16, dtype=torch.int64), torch.zeros(4, 63))
    module = (torch.jit.script(model) if how == "script"
              # torch ships torch.jit.trace without annotations.
              else torch.jit.trace(model, example))  # type: ignore[no-untyped-call]
    assert check_loaded_model(torch, _loaded(module)) > 100


def test_the_honest_test_model_passes_the_check() -> None:
    assert check_loaded_model(torch, _loaded(honest_model())) > 0


REFUSED: dict[str, tuple[Callable[[], nn.Module], str]] = {
    "inductor::_reinterpret_tensor in forward": (
        ReinterpretsMemory, r"calls inductor::_reinterpret_tensor in forward"),
    "as_strided in a function called from a loop in an if of a submodule": (
        HidesAnUnsafeViewDeep, r"calls aten::as_strided in forward"),
    "from_file in a method the evaluator never calls": (
        UnusedMethodReadsFiles, r"calls aten::from_file in leak"),
    "uninitialised memory": (UninitialisedMemory, r"calls aten::empty in forward"),
    "a sparse buffer": (SparseBuffer, r"table is a torch.sparse_coo tensor"),
    "a sparse tensor in a list attribute": (
        SparseInAList, r"tables is a torch.sparse_coo tensor"),
    "sorting objects whose __lt__ is unsafe": (
        SortsObjects, r"applies aten::sort to objects of __torch__\.\S*_SortKey in forward"),
    "a with-statement whose __enter__ is unsafe": (
        EntersAContext, r"uses a with-statement in forward"),
}


@pytest.mark.parametrize("case", list(REFUSED), ids=list(REFUSED))
def test_a_model_using_what_is_not_allowed_is_refused(case: str) -> None:
    factory, reason = REFUSED[case]
    with pytest.raises(OperatorRefused, match=reason):
        check_loaded_model(torch, _loaded(torch.jit.script(factory())))


def test_reinterpret_tensor_really_ignores_the_bounds_of_its_input() -> None:
    # The control: the operator refused above builds a view past its input's end without a
    # check (here still inside the storage, so that this process reads nothing it should not).
    storage = torch.arange(1000, dtype=torch.float32)
    small = storage[:4]
    view = torch.ops.inductor._reinterpret_tensor(small, [2], [1], 500)
    assert view.tolist() == [500.0, 501.0]
