"""A trusted job for the zygote's own tests: reports which file descriptors a fork of the zygote
holds, optionally after sleeping. Run as `tests.evaluator.checkpoint.zygote_payload` by
`Zygote.run`; it applies no sandbox (what it checks is what the fork inherits)."""

from __future__ import annotations

import json
import os
import sys
import time


def main() -> int:
    job = json.loads(sys.stdin.buffer.read())
    time.sleep(float(job.get("sleep_s", 0)))
    held = []
    for fd in range(1024):
        try:
            os.fstat(fd)
        except OSError:
            continue
        held.append(fd)
    with os.fdopen(int(job["result_fd"]), "wb") as result:
        result.write(json.dumps({"fds": held, "pid": os.getpid(), "ppid": os.getppid()}).encode())
    return 0
