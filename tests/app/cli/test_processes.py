"""Stopping child processes: SIGINT first, SIGKILL only for one that ignores it."""

from __future__ import annotations

import signal
import subprocess
import sys

from app.cli.processes import stop_gracefully

WAIT_FOR_SIGNAL = "import sys, time; print('ready', flush=True); time.sleep(120)"
IGNORE_SIGINT = ("import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); "
                 "print('ready', flush=True); time.sleep(120)")


def start(code: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert process.stdout is not None
    assert process.stdout.readline() == b"ready\n"  # its signal handlers are in place
    return process


def test_a_child_that_honours_sigint_stops_by_it() -> None:
    process = start(WAIT_FOR_SIGNAL)
    stop_gracefully(process, timeout_s=30)
    # An uncaught KeyboardInterrupt ends Python by SIGINT again: stopped by it, not by SIGKILL.
    assert process.returncode == -signal.SIGINT


def test_a_child_that_ignores_sigint_is_killed() -> None:
    process = start(IGNORE_SIGINT)
    stop_gracefully(process, timeout_s=1)
    assert process.returncode == -signal.SIGKILL


def test_a_child_that_already_exited_is_left_alone() -> None:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    stop_gracefully(process)
    assert process.returncode == 0
