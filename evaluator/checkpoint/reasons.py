"""Why a checkpoint run failed, in a fixed set of messages.

A failure reason goes back to the participant, who wrote the code that failed, so it must say
what went wrong without becoming a channel out of the sandbox: it never carries a path or the
contents of a file from the worker's machine, and "no such file" reads the same as "permission
denied" (else any path's existence could be probed). Each reason is one of:

    file access refused    network refused       operator not allowed: <op> in <method>
    time limit (wall or CPU)                     memory limit
    killed by signal N (NAME)                    bad output: <the evaluator's own check>
    the model raised <Type>: <its last line>     loading the checkpoint failed: <Type>: <line>

The child classifies what it sees (`classify_exception`) and sends the pieces; the parent,
which does not trust the child, composes the message itself (`compose`) from a known category,
cleaning the pieces again, or classifies how the process ended (`from_ending`). A model's own
message is cut to its last line (where Python and TorchScript put the cause: "IndexError: index
out of range in self"), with paths and pointer-sized numbers masked.
"""

from __future__ import annotations

import re
import signal
from typing import Any, Literal

Category = Literal[
    "file_access", "network", "operator", "time_wall", "time_cpu", "memory", "signal",
    "bad_output", "model_error", "load_error", "evaluator",
]
CATEGORIES: tuple[Category, ...] = (
    "file_access", "network", "operator", "time_wall", "time_cpu", "memory", "signal",
    "bad_output", "model_error", "load_error", "evaluator",
)

FILE_ACCESS = "file access refused: a checkpoint may not read or write files"
NETWORK = "network refused: a checkpoint may not open connections"
MAX_LINE = 300

_PATH = re.compile(r"(?<![\w.\-])(?:~|\.{1,2})?/[^\s'\"<>,;()\[\]{}]*")
_BIG_NUMBER = re.compile(r"0[xX][0-9a-fA-F]{5,}|\d{10,}")
_FILE_MARKERS = (
    "unable to open", "no such file", "permission denied", "unable to mmap", "read-only file",
    "errno 2]", "errno 13]", "operation not permitted", "is a directory", "not a directory",
    "unable to write", "file too large",
)
_NETWORK_MARKERS = ("connection refused", "network is unreachable", "errno 111]", "errno 101]")
_MEMORY_MARKERS = (
    "can't allocate memory", "cannot allocate memory", "out of memory", "bad_alloc",
)


def clean_line(text: object, limit: int = MAX_LINE) -> str:
    """The last non-empty line of `text`, printable, with paths and long numbers masked."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    line = lines[-1] if lines else ""
    line = "".join(ch if ch.isprintable() else "?" for ch in line)
    line = _PATH.sub("<path>", line)
    line = _BIG_NUMBER.sub("<number>", line)
    return line[:limit]


def clean_type(name: object) -> str:
    """An exception type's name, or "Error" when it is not a plain identifier."""
    text = str(name).rsplit(".", 1)[-1]
    return text if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", text) else "Error"


def _cause_line(message: str) -> str:
    # TorchScript ends an error with the original exception as "Type: message" on its own line;
    # `builtins.` prefixes Python exceptions raised from TorchScript.
    return clean_line(message).removeprefix("builtins.")


def classify_exception(exc: BaseException) -> dict[str, Any]:
    """What the child sends for an exception raised while loading or running the model:
    {"category", "exc_type", "last_line"}; `category` is file_access, network, memory or
    model_error (the caller turns model_error into load_error for the loader)."""
    # Only the last line: what comes before it in a TorchScript error is a traceback quoting
    # the model's own source, which may say anything.
    lines = [line for line in str(exc).splitlines() if line.strip()]
    lowered = (lines[-1] if lines else "").lower()
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError" or any(
        marker in lowered for marker in _MEMORY_MARKERS
    ):
        return {"category": "memory"}
    if isinstance(exc, ConnectionError) or any(m in lowered for m in _NETWORK_MARKERS):
        return {"category": "network"}
    if isinstance(exc, OSError) or any(marker in lowered for marker in _FILE_MARKERS):
        return {"category": "file_access"}
    return {"category": "model_error", "exc_type": type(exc).__name__,
            "last_line": _cause_line(str(exc))}


def compose(report: dict[str, Any], *, memory_bytes: int) -> str:
    """The participant's reason from what the child reported (not trusted: everything is
    checked and cleaned again here)."""
    category = report.get("category")
    detail = clean_line(report.get("detail", ""))
    exc_type = clean_type(report.get("exc_type", "Error"))
    last_line = _cause_line(str(report.get("last_line", "")))
    if category == "file_access":
        return FILE_ACCESS
    if category == "network":
        return NETWORK
    if category == "memory":
        return memory_limit(memory_bytes)
    if category == "operator":
        return f"operator not allowed: {detail}" if detail else "operator not allowed"
    if category == "bad_output":
        return f"bad output: {detail}" if detail else "bad output"
    if category == "load_error":
        return f"loading the checkpoint failed: {_with_line(exc_type, last_line)}"
    if category == "model_error":
        return f"the model raised {_with_line(exc_type, last_line)}"
    if category == "evaluator":
        return f"evaluator error, not the checkpoint's fault: {detail or 'see the worker log'}"
    return "bad output: the run sent a result the evaluator does not understand"


def _with_line(exc_type: str, last_line: str) -> str:
    if not last_line:
        return exc_type
    # The last line often repeats the type ("IndexError: index out of range in self").
    if re.match(r"[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b", last_line):
        return last_line
    return f"{exc_type}: {last_line}"


def memory_limit(memory_bytes: int) -> str:
    return f"memory limit: the model needed more than the {memory_bytes / (1 << 30):g} GiB allowed"


def time_wall(limit_s: float) -> str:
    return f"time limit: the run took longer than its wall-clock limit of {limit_s:g} s"


def time_cpu(limit_s: int) -> str:
    return f"time limit: the run used more than {limit_s} s of CPU time"


def from_ending(
    *,
    wall_timed_out: bool,
    term_signal: int | None,
    returncode: int | None,
    cpu_s: float,
    result_overflow: bool,
    output_tail: str,
    wall_limit_s: float,
    cpu_limit_s: int,
    memory_bytes: int,
) -> str:
    """The reason for a child that did not report one itself, from how it ended. The order
    matters: a run killed at its wall limit is a time failure whatever else it did; the CPU
    limit ends it with SIGXCPU (or SIGKILL a second later); only what is left is a crash."""
    if wall_timed_out:
        return time_wall(wall_limit_s)
    if term_signal == signal.SIGXCPU or (
        term_signal == signal.SIGKILL and cpu_s >= cpu_limit_s - 1
    ):
        return time_cpu(cpu_limit_s)
    if result_overflow:
        return "bad output: the run sent more data than its predictions can take"
    # Only the marker's presence is used, never the text: the output is the model's to write.
    if term_signal == signal.SIGABRT and "bad_alloc" in output_tail:
        return memory_limit(memory_bytes)
    if term_signal is not None:
        name = signal.Signals(term_signal).name if term_signal in _SIGNALS else "unknown"
        if term_signal == signal.SIGKILL:
            return (f"killed by signal 9 ({name}) from outside the sandbox, not at one of its "
                    "limits (the machine's out-of-memory killer, or an operator)")
        return f"killed by signal {term_signal} ({name})"
    return f"bad output: the run ended (exit code {returncode}) without sending its predictions"


_SIGNALS = frozenset(int(s) for s in signal.Signals)
