"""The sandbox itself, with arbitrary Python inside it (the worst case: code that escaped
TorchScript). Each test runs twice: in a fresh sandboxed child (`sandbox.launch`) and in a fork
of a zygote (`zygote.Zygote.run`), which must confine itself exactly alike."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from evaluator.checkpoint.sandbox import (
    Limits,
    SandboxPolicy,
    default_read_paths,
    launch,
)
from evaluator.checkpoint.zygote import Zygote

PAYLOAD = "tests.evaluator.checkpoint.sandbox_payload"
_launch: Any = launch


@pytest.fixture(scope="module")
def zygote_parent() -> Iterator[Zygote]:
    parent = Zygote()
    parent.start()
    yield parent
    parent.close()


@pytest.fixture(autouse=True, params=["fresh process", "zygote"])
def via(request: pytest.FixtureRequest) -> Iterator[str]:
    """How `_run` starts the child: every test of this module runs both ways."""
    global _launch
    _launch = request.getfixturevalue("zygote_parent").run if request.param == "zygote" else launch
    yield request.param
    _launch = launch


def _run(actions: list[dict[str, Any]], wall_time_s: float = 60, **policy: Any) -> Any:
    sandbox_policy = SandboxPolicy(
        limits=Limits(wall_time_s=wall_time_s), read_paths=default_read_paths(), **policy
    )
    return _launch(
        PAYLOAD,
        {"policy": sandbox_policy.to_json(), "actions": actions},
        wall_time_s=wall_time_s,
        max_result_bytes=1 << 20,
    )


def _outcomes(outcome: Any) -> list[dict[str, Any]]:
    assert outcome.returncode == 0, outcome.output_tail
    return list(json.loads(outcome.result)["outcomes"])


class _Listener:
    """A TCP or unix server in this process that records whether anyone connected."""

    def __init__(self, family: socket.AddressFamily, address: Any) -> None:
        self.sock = socket.socket(family)
        self.sock.bind(address)
        self.sock.listen()
        self.sock.settimeout(0.2)
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def tcp_listener() -> Iterator[_Listener]:
    listener = _Listener(socket.AF_INET, ("127.0.0.1", 0))
    yield listener
    listener.close()


def test_code_in_the_sandbox_cannot_open_a_tcp_connection(tcp_listener: _Listener) -> None:
    port = tcp_listener.sock.getsockname()[1]
    # Reachable from outside the sandbox, so a refusal below is the sandbox's doing.
    with socket.create_connection(("127.0.0.1", port), timeout=2):
        pass
    deadline = time.monotonic() + 5
    while tcp_listener.connections < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert tcp_listener.connections == 1
    (outcome,) = _outcomes(_run([{"kind": "tcp", "port": port}]))
    assert outcome["ok"] is False
    # Landlock refuses the connect (EACCES) where the kernel has ABI >= 4; the empty network
    # namespace would answer "unreachable" or "refused" otherwise.
    assert any(word in outcome["error"] for word in ("Permission denied", "unreachable", "refused"))
    time.sleep(0.5)
    assert tcp_listener.connections == 1


def test_code_in_the_sandbox_cannot_reach_a_unix_socket_under_tmp(tmp_path: Path) -> None:
    path = tmp_path / "service.sock"
    listener = _Listener(socket.AF_UNIX, str(path))
    try:
        (outcome,) = _outcomes(_run([{"kind": "unix", "path": str(path)}]))
    finally:
        listener.close()
    assert outcome["ok"] is False
    assert listener.connections == 0


def test_code_in_the_sandbox_cannot_write_files(tmp_path: Path) -> None:
    target = tmp_path / "pwned.txt"
    outcomes = _outcomes(_run([{"kind": "write", "path": str(target)}]))
    assert outcomes[0]["ok"] is False
    assert not target.exists()


def test_landlock_alone_refuses_writes_where_nothing_is_hidden(tmp_path: Path) -> None:
    os.chmod(tmp_path, 0o777)
    target = tmp_path / "pwned.txt"
    (outcome,) = _outcomes(_run([{"kind": "write", "path": str(target)}], hidden_paths=()))
    assert outcome["ok"] is False
    assert "Permission denied" in outcome["error"]
    assert not target.exists()


def test_code_in_the_sandbox_cannot_read_etc_passwd() -> None:
    (outcome,) = _outcomes(_run([{"kind": "read", "path": "/etc/passwd"}]))
    assert outcome["ok"] is False
    assert "Permission denied" in outcome["error"]


def test_code_in_the_sandbox_cannot_signal_processes_outside_it() -> None:
    (outcome,) = _outcomes(_run([{"kind": "signal", "pid": os.getpid()}]))
    assert outcome["ok"] is False


def test_code_in_the_sandbox_runs_as_nobody_when_started_as_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("dropping to nobody happens only when the worker runs as root")
    (outcome,) = _outcomes(_run([{"kind": "uid"}]))
    assert outcome["value"] == [65534, 65534, 65534]


def test_a_sleeping_child_is_killed_at_the_wall_time_limit() -> None:
    outcome = _run([{"kind": "sleep", "seconds": 600}], wall_time_s=5)
    assert outcome.wall_timed_out
    assert outcome.term_signal == signal.SIGKILL
    assert outcome.wall_s < 30


def test_a_crashing_child_is_reported_with_its_signal() -> None:
    outcome = _run([{"kind": "segfault"}])
    assert outcome.term_signal == signal.SIGSEGV
    assert not outcome.wall_timed_out


def test_the_child_asks_to_be_killed_when_its_parent_dies() -> None:
    (outcome,) = _outcomes(_run([{"kind": "pdeathsig"}]))
    assert outcome["value"] == signal.SIGKILL


_WORKER = """
import sys
from evaluator.checkpoint.sandbox import Limits, SandboxPolicy, default_read_paths, launch
from evaluator.checkpoint.zygote import Zygote
policy = SandboxPolicy(limits=Limits(wall_time_s=600), read_paths=default_read_paths())
run = launch
if sys.argv[2] == "zygote":
    parent = Zygote()
    parent.start()
    run = parent.run
run(sys.argv[1], {"policy": policy.to_json(), "actions": [{"kind": "sleep", "seconds": 600}]},
    wall_time_s=600, max_result_bytes=1 << 20)
"""


def _state(pid: int) -> str | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return f"{fields['State'].split()[0]} {fields['Uid'].split()[0]}"


def _descendants(pid: int) -> list[int]:
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [int(c) for c in children] + [d for c in children for d in _descendants(int(c))]


def test_a_running_child_dies_with_a_worker_killed_mid_job(via: str) -> None:
    worker = subprocess.Popen([sys.executable, "-c", _WORKER, PAYLOAD, via])
    try:
        child = None
        deadline = time.monotonic() + 120
        # Wait until the child (through the zygote: the grandchild) has sealed itself: it runs
        # as nobody from then on.
        while time.monotonic() < deadline:
            sealed = [p for p in _descendants(worker.pid) if (_state(p) or "").endswith(" 65534")]
            if sealed:
                child = sealed[0]
                break
            time.sleep(0.1)
        assert child is not None, "the sandboxed child never started"
        time.sleep(0.5)
        worker.kill()
        worker.wait()
        while time.monotonic() < deadline:
            state = _state(child)
            if state is None or state.startswith("Z"):
                break
            time.sleep(0.1)
        assert state is None or state.startswith("Z"), state
    finally:
        worker.kill()
        worker.wait()


def test_a_hidden_folder_holding_the_python_installation_is_hidden_around_it(
    tmp_path: Path,
) -> None:
    import evaluator

    package = Path(evaluator.__file__).resolve().parent
    hidden = (str(package.parent), str(tmp_path))
    outcome = _run(
        [{"kind": "read", "path": str(package / "__init__.py")},
         {"kind": "read", "path": str(package.parent / "pyproject.toml")}],
        hidden_paths=hidden,
    )
    result = json.loads(outcome.result)
    (hidden_measure,) = [m for m in result["measures"] if m.startswith("hidden: ")]
    assert {str(package.parent), str(tmp_path)} <= set(hidden_measure[8:].split(", "))
    # With the venv inside the checkout (a fresh clone's), it is left visible beside the package.
    (visible,) = [m for m in result["measures"] if m.startswith("left visible (needed to run): ")]
    assert str(package) in visible[len("left visible (needed to run): "):].split(", ")
    needed, other = result["outcomes"]
    assert needed["ok"] is True
    assert other["ok"] is False and "No such file" in other["error"]
