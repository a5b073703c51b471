"""Arbitrary Python run inside the sandbox: what a participant's code could do after escaping
TorchScript (no TorchScript operator opens a socket, so this is how the network is tested).

Run as `python -m tests.evaluator.checkpoint.sandbox_payload` by `sandbox.launch`; it seals
itself exactly as the checkpoint child does, tries each action in the job and reports, per
action, whether it succeeded, as one JSON line on the result pipe.
"""

from __future__ import annotations

import encodings.idna  # noqa: F401  (imported before the user changes: see main)
import json
import os
import signal
import socket
import sys
import tempfile
import time
from typing import Any

from evaluator.checkpoint import sandbox


def _attempt(action: dict[str, Any]) -> dict[str, Any]:
    kind = action["kind"]
    try:
        if kind == "tcp":
            with socket.create_connection(("127.0.0.1", int(action["port"])), timeout=2):
                pass
        elif kind == "unix":
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(2)
                sock.connect(action["path"])
        elif kind == "write":
            with open(action["path"], "w") as file:
                file.write("pwned")
        elif kind == "read":
            with open(action["path"], "rb") as file:
                file.read(16)
        elif kind == "signal":
            os.kill(int(action["pid"]), 0)
        elif kind == "pdeathsig":
            return {"kind": kind, "ok": True, "value": sandbox.parent_death_signal()}
        elif kind == "tempdir":
            return {"kind": kind, "ok": True,
                    "value": [os.environ.get("TMPDIR"), tempfile.gettempdir()]}
        elif kind == "uid":
            return {"kind": kind, "ok": True, "value": [os.getuid(), os.geteuid(), os.getgid()]}
        elif kind == "sleep":
            time.sleep(float(action["seconds"]))
        elif kind == "segfault":
            os.kill(os.getpid(), signal.SIGSEGV)
        else:
            raise ValueError(kind)
    except OSError as exc:
        return {"kind": kind, "ok": False, "error": f"{type(exc).__name__}: {exc}"}
    return {"kind": kind, "ok": True}


def main() -> int:
    # Modules imported after the drop to nobody must be readable by nobody; the interpreter
    # used here may live under /root, so what the actions need is imported at the top.
    job = json.loads(sys.stdin.buffer.read())
    result = os.fdopen(int(job["result_fd"]), "wb", buffering=0)
    policy = sandbox.SandboxPolicy.from_json(job["policy"])
    measures = sandbox.isolate_namespaces(policy.hidden_paths, keep_visible=policy.read_paths)
    sandbox.use_private_tmp(measures)
    measures.append(sandbox.restrict_filesystem(policy.read_paths, policy.device_paths))
    sandbox.apply_limits(policy.limits)
    measures.append(sandbox.drop_privileges(policy.uid, policy.gid))
    sandbox.die_with_parent(int(job["parent_pid"]))
    outcomes = [_attempt(action) for action in job["actions"]]
    result.write(json.dumps({"measures": measures, "outcomes": outcomes}).encode() + b"\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
