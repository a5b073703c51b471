"""The operators a participant's TorchScript may call: an allow-list, checked on the loaded graph.

The list itself is `allowed_ops.ALLOWED_OPS`, a checked-in set of names: an operator that is not
in it is refused, so an operator that a new torch release adds (or one the list's authors did not
think of) is refused until someone puts it there. The list holds only `aten::` and `prim::` names:
the tensor math, TorchScript's own language operators (lists, strings, control flow), and
nothing from any other namespace (`inductor::`, `quantized::`, `c10d::`, custom ops...).

`DENY_FAMILIES` says which `aten`/`prim` operators were left out and why; it is what
`python -m evaluator.checkpoint.allowlist` (for maintainers, after a torch upgrade) applies to
the registry to write a new candidate list, and what the tests check the list against. It is
never consulted at run time.

`check_loaded_model` walks every method of every submodule, with every function and method
they call inlined, including the blocks of `if` and loops, and refuses the first operator not
on the list, or a tensor that is not a plain dense one (a sparse or quantized tensor in the
archive could carry indices nobody checked).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Iterator
from typing import Any

from evaluator.checkpoint.allowed_ops import ALLOWED_OPS

ALLOWED_NAMESPACES = ("aten", "prim")

# Graph node kinds of the TorchScript language that are not registered operators (no schema),
# as the loader leaves them: constants, containers, attributes, calls, control flow.
STRUCTURAL_KINDS = frozenset(
    {
        "prim::Constant",
        "prim::ListConstruct",
        "prim::ListUnpack",
        "prim::TupleConstruct",
        "prim::TupleUnpack",
        "prim::TupleIndex",
        "prim::TupleSlice",
        "prim::DictConstruct",
        "prim::GetAttr",
        "prim::SetAttr",
        "prim::CallMethod",
        "prim::CallFunction",
        "prim::If",
        "prim::Loop",
        "prim::CreateObject",
        "prim::isinstance",
        "prim::unchecked_cast",
        "prim::Uninitialized",
        "prim::RaiseException",
        "prim::EnumName",
        "prim::EnumValue",
        "prim::ModuleContainerIndex",
    }
)

# (pattern on the part after `aten::`/`prim::`, why it is left out). Matched with re.search.
DENY_FAMILIES: tuple[tuple[str, str], ...] = (
    # Views and storage built from raw sizes, strides or offsets, and storage swaps.
    (r"as_strided|strided|_reinterpret|reshape_alias|slice_inverse", "unchecked views"),
    (r"^set$|^set_|^_set_(?!item)|^is_set_to$|storage|resize|^lift$", "storage manipulation"),
    (r"unsafe", "skips its bounds checks"),
    (r"^_efficientzerotensor$|^empty|^new_empty", "uninitialised memory (use zeros)"),
    # Files, processes, other machines, threads, global state.
    (r"^save$|^load|from_file|pin_memory|is_pinned|record_stream", "files or devices"),
    (r"rpc|^to_here$|owner|local_value|^wait$|fork|await", "other processes or threads"),
    (r"seed|rng_state|set_grad_enabled|^TimePoint$|^AddStatValue$|^id$", "process state"),
    # Tensor kinds whose invariants (indices, offsets, scales) the kernels take on trust.
    (r"sparse|nested|coo|csr|csc|bsr|bsc|_nnz|coalesce|^indices|_indices|^crow|^ccol|^row_ind"
     r"|^col_ind|dense_dim|to_dense|spmm|^smm$|^hspmm$|^sspaddmm$|padded_tensor", "sparse/nested"),
    (r"quantiz|^q_|qscheme|int_repr|qparams|fake_quant|fbgemm|qnnpack", "quantized tensors"),
    # Backend-specific kernels and fusion internals.
    (r"mkldnn|onednn|cudnn|miopen|mps|vulkan|xnnpack|nnpack|xla|ipu|mtia|maia|_cufft|cuda_|cutlass"
     r"|slow_conv|thnn|conv_tbc|depthwise|overrideable|Fusion|Fused|TensorExpr|Static|Guard"
     r"|BailOut|Bailout|profile|Autograd|Differentiable|Fallback|RequiresGradCheck|TypeCheck"
     r"|PythonOp|BroadcastSizes|ChunkSizes|ReductionSizes|MMBatchSide|MMTreeReduce|VarConcat"
     r"|VarStack|IfThenElse", "backend or fusion internals"),
    # Training, autograd and kernels with a history of unchecked index arguments.
    (r"backward|_jvp|^grad$|get_gradients|retain|^_?foreach|_fused_", "training"),
    (r"loss|fractional_max_pool|max_unpool|segment_reduce|embedding_bag|embedding_renorm"
     r"|lu_unpack|lu_solve|ldl|householder|orgqr|ormqr|geqrf|histogramdd|col2im|im2col"
     r"|grid_sampler|cummaxmin|flatten_dense|^sym_", "unchecked index or size arguments"),
    (r"is_distributed|is_vulkan_available|confirmed_by_owner", "not tensor math"),
)

# Private (`_`-prefixed) aten operators are left out, save these: what `torch.jit.script` and
# `torch.jit.trace` write for ordinary modules (conv, dict assignment, unique, shapes...).
VETTED_PRIVATE = frozenset(
    {
        "aten::_convolution",
        "aten::_set_item",
        "aten::_unique2",
        "aten::_shape_as_tensor",
        "aten::_reshape_from_tensor",
        "aten::_to_copy",
        "aten::_dim_arange",
        "aten::_pad_packed_sequence",
        "aten::_pack_padded_sequence",
        "aten::_softmax",
        "aten::_log_softmax",
        "aten::_weight_norm",
        "aten::_infer_size",
        "aten::_pad_enum",
        "aten::_pad_circular",
        "aten::_unwrap_optional",
        "aten::_list_to_tensor",
        "aten::_assert",
        "aten::_cast_Float",
        "aten::_cast_Long",
    }
)


# Operators that only hold, move or compare by identity the objects in a container, so that one
# applied to objects of a TorchScript class runs none of the class's methods. Any other operator
# applied to such objects is refused: `sort` calls `__lt__`, `index` and `in` call `__eq__`, and
# those methods' code is not part of any graph this module checks. (`with obj:` is refused for
# the same reason: prim::Enter and prim::Exit run `__enter__`/`__exit__` out of sight.)
OBJECT_SAFE = frozenset(
    {
        "aten::len", "aten::append", "aten::__getitem__", "aten::_set_item", "aten::insert",
        "aten::pop", "aten::extend", "aten::clear", "aten::__is__", "aten::__isnot__",
        "aten::list", "aten::reverse", "aten::slice", "aten::add", "aten::mul", "aten::copy",
        "aten::keys", "aten::values", "aten::items", "aten::get", "aten::setdefault",
        "aten::Delete", "aten::dict", "aten::update", "aten::popitem",
    }
)


class OperatorRefused(Exception):
    """The model uses an operator (or holds a tensor) that is not allowed; says which, where."""


def deny_reason(name: str) -> str | None:
    """Why `name` ("ns::op") is left out of the list, or None if no family covers it."""
    namespace, _, op = name.partition("::")
    if namespace not in ALLOWED_NAMESPACES:
        return f"namespace {namespace}:: (only {', '.join(ALLOWED_NAMESPACES)} are allowed)"
    for pattern, why in DENY_FAMILIES:
        if re.search(pattern, op, re.IGNORECASE):
            return why
    private = op.startswith("_") and not op.startswith("__")
    if namespace == "aten" and private and name not in VETTED_PRIVATE:
        return "private operator"
    return None


def is_allowed(kind: str) -> bool:
    return kind in ALLOWED_OPS or kind in STRUCTURAL_KINDS


def candidate_list(registered: Iterable[str]) -> list[str]:
    """The allow-list the families give for the `registered` operator names (maintainers)."""
    return sorted(
        {name for name in registered if deny_reason(name) is None} - STRUCTURAL_KINDS
    )


def _node_kinds(nodes: Any) -> Iterator[tuple[str, Any]]:
    for node in nodes:
        yield node.kind(), node
        for block in node.blocks():
            yield from _node_kinds(block.nodes())


def _object_type(torch: Any, value_type: Any) -> str | None:
    """The name of a TorchScript class found in `value_type` (a list of them, an optional...)."""
    if isinstance(value_type, torch.ClassType):
        return str(value_type.qualified_name())
    for contained in value_type.containedTypes():
        found = _object_type(torch, contained)
        if found is not None:
            return found
    return None


def _refuse_tensor(torch: Any, tensor: Any, what: str) -> None:
    if not isinstance(tensor, torch.Tensor):
        return
    if tensor.layout != torch.strided or tensor.is_quantized or tensor.is_nested:
        raise OperatorRefused(
            f"{what} is a {tensor.layout} tensor{' (quantized)' if tensor.is_quantized else ''}; "
            "only dense tensors are allowed"
        )


def check_loaded_model(torch: Any, model: Any) -> int:
    """Raise OperatorRefused for the first operator or tensor not allowed; return how many
    graph nodes were checked. Runs before any forward, on the model as loaded."""
    checked = 0
    for module_name, module in model.named_modules():
        for method_name in module._c._method_names():
            where = f"{module_name}.{method_name}" if module_name else method_name
            graph = module._c._get_method(method_name).graph.copy()
            # Every function and method called from here becomes part of this graph, so that a
            # call into code outside the module tree is checked too.
            torch._C._jit_pass_inline(graph)
            for kind, node in _node_kinds(graph.nodes()):
                checked += 1
                if kind in ("prim::Enter", "prim::Exit"):
                    raise OperatorRefused(
                        f"the checkpoint uses a with-statement in {where}, whose __enter__ and "
                        "__exit__ cannot be checked (inference runs without gradients already)"
                    )
                if not is_allowed(kind):
                    raise OperatorRefused(f"the checkpoint calls {kind} in {where}")
                if kind.startswith("aten::") and kind not in OBJECT_SAFE:
                    for value in node.inputs():
                        held = _object_type(torch, value.type())
                        if held is not None:
                            raise OperatorRefused(
                                f"the checkpoint applies {kind} to objects of {held} in {where}"
                                ", which would run their methods unchecked"
                            )
                if kind in ("prim::CallMethod", "prim::CallFunction"):
                    # What inlining leaves is dynamic dispatch (an interface), whose target
                    # cannot be known before it runs.
                    raise OperatorRefused(
                        f"the checkpoint makes a dynamic call ({kind}, an interface) in {where}"
                    )
                constant = kind == "prim::Constant" and node.hasAttribute("value")
                if constant and node.kindOf("value") == "t":
                    _refuse_tensor(torch, node.t("value"), f"a constant in {where}")
        # Every attribute, not just parameters and buffers: a list of tensors is one too.
        attributes = torch._C._jit_debug_module_iterators(module._c)["named_attributes"]
        for name, value in attributes:
            for tensor in _tensors_in(torch, value):
                _refuse_tensor(torch, tensor, f"{module_name + '.' if module_name else ''}{name}")
    return checked


def _tensors_in(torch: Any, value: Any) -> Iterator[Any]:
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _tensors_in(torch, item)
    elif isinstance(value, dict):
        for item in (*value.keys(), *value.values()):
            yield from _tensors_in(torch, item)


def _main() -> int:
    import torch

    registered = {schema.name for schema in torch._C._jit_get_all_schemas()}
    lines = "\n".join(f'        "{name}",' for name in candidate_list(registered))
    sys.stdout.write(
        f'"""The operators a checkpoint may call (generated from torch {torch.__version__}\n'
        "by `python -m evaluator.checkpoint.allowlist`, then reviewed; see allowlist.py).\"\"\"\n"
        "\nALLOWED_OPS = frozenset(\n    {\n" + lines + "\n    }\n)\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(_main())
