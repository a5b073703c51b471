"""The fixed failure reasons: what a model's message may carry to the participant, and what not."""

from __future__ import annotations

import pytest

from evaluator.checkpoint.reasons import (
    FILE_ACCESS,
    classify_exception,
    clean_line,
    compose,
)

GIB = 1 << 30


def _reason(exc: BaseException, category: str = "model_error") -> str:
    report = classify_exception(exc)
    if report["category"] == "model_error":
        report["category"] = category
    return compose(report, memory_bytes=2 * GIB)


def test_a_missing_file_and_a_refused_one_read_the_same() -> None:
    missing = RuntimeError("unable to open file </nonexistent/x> in read-only mode: "
                           "No such file or directory (2)")
    refused = RuntimeError("unable to open file </etc/passwd> in read-only mode: "
                           "Permission denied (13)")
    assert _reason(missing) == _reason(refused) == FILE_ACCESS
    assert _reason(FileNotFoundError(2, "No such file", "/x")) == FILE_ACCESS
    assert _reason(PermissionError(13, "Permission denied", "/etc/shadow")) == FILE_ACCESS


def test_the_cause_on_the_last_line_of_a_long_error_is_kept() -> None:
    traceback = "\n".join(f"  File \"code/__torch__.py\", line {i}, in forward" for i in range(500))
    exc = RuntimeError(f"The following operation failed in the TorchScript interpreter.\n"
                       f"{traceback}\nRuntimeError: index out of range in self\n")
    assert _reason(exc) == "the model raised RuntimeError: index out of range in self"


def test_paths_and_pointer_sized_numbers_are_masked() -> None:
    exc = ValueError("cannot use /work/main/.venv/lib/python3.11 at 0x7f3a9c000000 or "
                     "140737488355328")
    assert _reason(exc, "load_error") == (
        "loading the checkpoint failed: ValueError: cannot use <path> at <number> or <number>")


def test_a_division_and_small_numbers_are_left_alone() -> None:
    assert clean_line("expected 3/4 of 1024 rows") == "expected 3/4 of 1024 rows"


def test_memory_is_read_off_the_cause_not_off_the_quoted_source() -> None:
    quoted = ValueError("  # out of memory? never here\n    x = f(y)\nValueError: bad shape")
    assert _reason(quoted) == "the model raised ValueError: bad shape"
    alloc = RuntimeError("trace...\nDefaultCPUAllocator: can't allocate memory: you tried to "
                         "allocate 68719476736 bytes")
    assert _reason(alloc) == "memory limit: the model needed more than the 2 GiB allowed"


def test_a_long_last_line_is_cut() -> None:
    assert len(_reason(RuntimeError("x" * 5000))) < 400


@pytest.mark.parametrize("category", ["evaluator", "no such category", None])
def test_what_the_child_says_freely_never_reaches_the_reason(category: object) -> None:
    report = {"category": category, "reason": "root:x:0:0:root:/root:/bin/bash",
              "detail": "/etc/passwd"}
    reason = compose(report, memory_bytes=GIB)
    assert "root:x" not in reason and "/etc" not in reason
