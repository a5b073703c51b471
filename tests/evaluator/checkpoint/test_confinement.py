"""Issue 14's attacks on the sandbox, run through the real child: operators outside the
allow-list, the code scan bypassed, load-time code, failure reasons as a channel out (file
contents, which paths exist, libtorch's memory), the cause kept, time named as time, and the
child's view of the temporary folder and of unix sockets."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from checkpoint_factories import LoopsForever, ReadsFile, reference_outputs, save, script
from confinement_factories import (
    LeaksAFileOnLoad,
    RaisesOnLoad,
    ReinterpretsMemory,
    UnseenCategoryDeep,
    rewrite_code,
)

from evaluator.checkpoint import (
    CheckpointFailed,
    Limits,
    check_archive,
    run_checkpoint,
)
from evaluator.checkpoint.reasons import FILE_ACCESS
from evaluator.checkpoint.sandbox import SandboxPolicy, default_read_paths, launch

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

PAYLOAD = "tests.evaluator.checkpoint.sandbox_payload"


def _fails(archive: Path, prepared: Path, **kwargs: Any) -> str:
    with pytest.raises(CheckpointFailed) as info:
        run_checkpoint(archive, prepared, "ctr,cvr", **kwargs)
    return str(info.value)


def test_reinterpret_tensor_is_refused_before_forward_runs(
    tmp_path: Path, prepared: Path, honest_archive: Path
) -> None:
    # Without the check, forward would write 1 MiB past its input and score (issue 14).
    archive = save(script(ReinterpretsMemory()), tmp_path / "reinterpret.pt")
    reason = _fails(archive, prepared, scan_code=False)
    assert reason == (
        "operator not allowed: the checkpoint calls inductor::_reinterpret_tensor in forward"
    )
    expected = reference_outputs(honest_archive, prepared)
    run = run_checkpoint(honest_archive, prepared, "ctr,cvr")
    np.testing.assert_allclose(run.ctr, expected[0], rtol=0, atol=1e-6)


def test_a_call_hidden_from_the_code_scan_is_refused_on_the_loaded_graph(
    tmp_path: Path, prepared: Path
) -> None:
    archive = save(script(ReadsFile("/etc/passwd")), tmp_path / "reader.pt")
    hidden = rewrite_code(archive, tmp_path / "hidden.pt", "torch.from_file(",
                          "torch.\\\n    from_file(")
    check_archive(hidden)  # the text scan does not see it: it is not the defence
    reason = _fails(hidden, prepared)
    assert reason == "operator not allowed: the checkpoint calls aten::from_file in forward"


def test_setstate_code_runs_while_loading_inside_the_sandbox(
    tmp_path: Path, prepared: Path
) -> None:
    archive = save(script(RaisesOnLoad()), tmp_path / "raises.pt")
    reason = _fails(archive, prepared)
    assert reason == "loading the checkpoint failed: ValueError: setstate ran while loading"


def test_which_paths_exist_cannot_be_read_off_the_reason(tmp_path: Path, prepared: Path) -> None:
    reasons = []
    for target in ("/etc/passwd", "/nonexistent/secret", str(prepared / "click.npy")):
        archive = save(script(LeaksAFileOnLoad(target)), tmp_path / "probe.pt")
        reasons.append(_fails(archive, prepared, scan_code=False))
    assert reasons == [FILE_ACCESS] * 3


def test_a_file_the_sandbox_lets_python_read_does_not_leak_through_the_reason(
    tmp_path: Path, prepared: Path
) -> None:
    config = Path(sys.prefix) / "pyvenv.cfg"
    if not config.is_file():
        pytest.skip("not running in a virtual environment")
    archive = save(script(LeaksAFileOnLoad(str(config))), tmp_path / "leak.pt")
    reason = _fails(archive, prepared, scan_code=False)
    assert reason == FILE_ACCESS
    first_line = config.read_text().splitlines()[0]
    assert first_line[:10] not in reason


def test_the_cause_of_a_long_torchscript_error_is_kept(tmp_path: Path, prepared: Path) -> None:
    # The error is a 20 kB traceback; the old 2,000-character cut kept its top and lost this.
    archive = save(script(UnseenCategoryDeep()), tmp_path / "deep.pt")
    reason = _fails(archive, prepared)
    assert reason == "the model raised RuntimeError: index out of range in self"


def test_an_endless_loop_in_forward_is_reported_as_time_at_the_wall_limit(
    tmp_path: Path, prepared: Path
) -> None:
    archive = save(script(LoopsForever()), tmp_path / "loop.pt")
    reason = _fails(archive, prepared,
                    limits=Limits(wall_time_s=15, cpu_time_s=10_000, memory_bytes=3 << 30))
    assert reason == "time limit: the run took longer than its wall-clock limit of 15 s"


def test_an_endless_loop_in_forward_is_reported_as_time_at_the_cpu_limit(
    tmp_path: Path, prepared: Path
) -> None:
    archive = save(script(LoopsForever()), tmp_path / "loop.pt")
    reason = _fails(archive, prepared,
                    limits=Limits(wall_time_s=300, cpu_time_s=8, memory_bytes=3 << 30))
    assert reason == "time limit: the run used more than 8 s of CPU time"


def _payload(actions: list[dict[str, Any]], read_paths: tuple[str, ...]) -> list[Any]:
    policy = SandboxPolicy(limits=Limits(wall_time_s=60), read_paths=read_paths)
    outcome = launch(PAYLOAD, {"policy": policy.to_json(), "actions": actions},
                     wall_time_s=60, max_result_bytes=1 << 20)
    assert outcome.returncode == 0, outcome.output_tail
    return list(json.loads(outcome.result)["outcomes"])


def test_the_temporary_folder_is_private_and_empty_even_with_python_installed_under_it(
    tmp_path: Path,
) -> None:
    # A Python installation under /tmp (a CI checkout) must stay readable; nothing else of /tmp
    # may be seen: not the other files, not a service's unix socket.
    if not str(tmp_path).startswith("/tmp/"):
        pytest.skip("the test folder is not under /tmp")
    installed = tmp_path / "venv"
    installed.mkdir()
    (installed / "lib.py").write_text("needed = True\n")
    (tmp_path / "secret.txt").write_text("another job's file")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(tmp_path / "service.sock"))
    listener.listen()
    try:
        outcomes = _payload(
            [
                {"kind": "read", "path": str(installed / "lib.py")},
                {"kind": "read", "path": str(tmp_path / "secret.txt")},
                {"kind": "unix", "path": str(tmp_path / "service.sock")},
                {"kind": "tempdir"},
            ],
            (*default_read_paths(), str(installed)),
        )
    finally:
        listener.close()
    needed, secret, sock, tempdir = outcomes
    assert needed["ok"] is True
    # "No such file", not Landlock's "Permission denied": they are not there to be refused.
    assert secret["ok"] is False and "No such file" in secret["error"]
    assert sock["ok"] is False and "No such file" in sock["error"]
    assert tempdir["value"] == ["/tmp", "/tmp"]
