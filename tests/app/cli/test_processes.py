"""Stopping child processes: SIGINT first, SIGKILL only for one that ignores it; the
supervisor that restarts `serve`'s consumer."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time

import pytest

from app.cli.processes import Supervisor, stop_gracefully

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


def test_the_supervisor_restarts_a_dying_child_with_a_doubling_backoff_and_logs_each(
        caplog: pytest.LogCaptureFixture) -> None:
    exited: list[int | None] = []

    def dies_at_once() -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])

    supervisor = Supervisor(dies_at_once, "test child", on_exit=lambda p: exited.append(
        p.returncode), backoff_s=0.05, backoff_max_s=0.2, healthy_after_s=60)
    with caplog.at_level(logging.WARNING, logger="app.cli.processes"):
        supervisor.start()
        deadline = time.monotonic() + 60
        while supervisor.restarts < 5:
            assert time.monotonic() < deadline, "the child was not restarted"
            time.sleep(0.05)
        supervisor.stop(timeout_s=5)
    delays = [float(m.split(" in ")[1].removesuffix(" s")) for m in caplog.messages
              if "exited with status 3" in m]
    assert delays[:5] == [0.05, 0.1, 0.2, 0.2, 0.2]
    assert exited[:5] == [3] * 5
    assert sum("restarted (pid" in m for m in caplog.messages) >= 4


def test_a_stopped_supervisor_stops_its_child_and_starts_no_other() -> None:
    started: list[subprocess.Popen[bytes]] = []

    def waits() -> subprocess.Popen[bytes]:
        started.append(start(WAIT_FOR_SIGNAL))
        return started[-1]

    supervisor = Supervisor(waits, "test child", backoff_s=0.01)
    supervisor.start()
    supervisor.stop(timeout_s=30)
    assert len(started) == 1 and started[0].returncode == -signal.SIGINT
    time.sleep(0.2)  # a restart would have happened by now (backoff 0.01 s)
    assert len(started) == 1
