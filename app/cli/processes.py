"""Child processes of the CLI: the queue consumer of `serve`, the service of `demo`."""

from __future__ import annotations

import signal
import subprocess


def stop_gracefully(process: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    """SIGINT first, which lets a consumer finish its job and `serve` stop its own consumer;
    SIGKILL only if that hangs."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
