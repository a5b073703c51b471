"""A pre-warmed parent for sandboxed children: the fixed start-up of a checkpoint job, paid once.

A fresh child (`sandbox.launch`) costs seconds before it reads its first byte: a new interpreter,
the torch import, the lazy imports of the loader. The zygote pays them once: it is a process
started like a fresh child (clean environment, `/` as working directory, its own session), which
imports torch, runs a tiny trusted model once, and then only forks. Each job is a fresh fork,
which applies to itself exactly what a fresh child applies (the job's module, e.g.
`evaluator.checkpoint.child`, runs unchanged: namespaces, Landlock, rlimits, the drop to
`nobody`), before it reads a byte of the archive. So the confinement is the same and one job can
leave nothing behind for the next: it never runs in the zygote, only in a copy of it.

What the zygote must never do, so that every fork is as clean as a fresh process:
- read anything a participant sent (it receives only the worker's job descriptions, and does not
  even read those: the fork reads its job from its own stdin);
- start a thread (namespaces and Landlock are per thread; the fork checks it has only one);
- initialise CUDA (a CUDA context does not survive a fork; the fork initialises its own);
- hold a secret (it is started with the same clean environment as a fresh child).

Protocol: the worker and the zygote share a SOCK_SEQPACKET socket pair. Per job the worker sends
the module's name and four file descriptors: a reply socket, the fork's stdin, its output
(stdout and stderr) and its result pipe. The zygote forks, answers `{"pid": P}` on the reply
socket, kills the fork's process group when the worker writes `kill` or closes the socket, and
when the fork exits sends `{"status": S, "cpu_s": C, "max_rss_bytes": M}` (from `wait4`, after
killing what the fork started). The zygote dies with the worker (parent-death signal) and each
fork with the zygote.

`launch_child` is what `run_checkpoint` calls: through the process-wide zygote (started on first
use, started again when it died), or a fresh process when asked or when no zygote can start.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import contextlib
import errno
import fcntl
import importlib
import io
import json
import logging
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from typing import Any, Literal, NoReturn

from evaluator.checkpoint import sandbox

log = logging.getLogger(__name__)

ZYGOTE_MODULE = "evaluator.checkpoint.zygote"
# Where the fork finds its result pipe; the job says so in `result_fd`.
RESULT_FD = 3
START_TIMEOUT_S = 180.0
# After a zygote failed to start, jobs take fresh processes for this long before trying again.
RETRY_AFTER_S = 600.0
_MESSAGE_MAX = 1 << 16


Started = Literal["zygote", "fresh process"]


class ZygoteUnavailable(Exception):
    """The zygote cannot take the job (it could not start, or died); run a fresh process."""


def supported() -> bool:
    """Whether this platform can run a zygote: fork, fd passing and seqpacket sockets."""
    return (
        sys.platform.startswith("linux")
        and hasattr(os, "fork")
        and hasattr(socket, "send_fds")
        and hasattr(socket, "SOCK_SEQPACKET")
    )


# --------------------------------------------------------------------------------------------
# The zygote process
# --------------------------------------------------------------------------------------------


def _prewarm() -> None:
    """Import what every job needs and run the loader and the batch loop once on a trusted
    model, on one thread, so that forks start warm. Raises SandboxError if a thread appeared."""
    import numpy as np
    import torch

    from evaluator.checkpoint import child, inference

    torch.set_num_threads(1)
    names = ("ctr", "cvr")
    categorical = np.zeros((8, 16), dtype=np.int32)
    numerical = np.zeros((8, 63), dtype=np.float32)
    child._warm_up(torch, inference, categorical, numerical, names, torch.device("cpu"))
    traceback.format_exception(ValueError("warm-up"))
    if sandbox.thread_count() != 1:
        raise sandbox.SandboxError(
            f"the zygote has {sandbox.thread_count()} threads after warming up; expected 1"
        )


def _become_job(module: str, stdin_fd: int, output_fd: int, result_fd: int) -> NoReturn:
    """In the fork: take the job's descriptors as 0, 1, 2 and RESULT_FD, close everything else
    (the zygote's socket, other jobs' pipes), and run `module.main()`."""
    code = 70
    try:
        os.setsid()
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        # Above every target first, so that no dup2 below overwrites a source.
        moved = [fcntl.fcntl(fd, fcntl.F_DUPFD, 16) for fd in (stdin_fd, output_fd, result_fd)]
        os.dup2(moved[0], 0)
        os.dup2(moved[1], 1)
        os.dup2(moved[1], 2)
        os.dup2(moved[2], RESULT_FD)
        os.closerange(RESULT_FD + 1, _max_fd())
        os.chdir("/")
        returned = importlib.import_module(module).main()
        code = returned if isinstance(returned, int) else 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        with contextlib.suppress(Exception):
            traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)


def _max_fd() -> int:
    try:
        return int(os.sysconf("SC_OPEN_MAX"))
    except (ValueError, OSError):
        return 1 << 16


class _Server:
    """The zygote's loop: jobs in on the control socket, forks out, their endings reported."""

    def __init__(self, control: socket.socket) -> None:
        self.control = control
        self.selector = selectors.DefaultSelector()
        self.jobs: dict[int, socket.socket] = {}
        self.wake_read, wake_write = os.pipe()
        os.set_blocking(self.wake_read, False)
        os.set_blocking(wake_write, False)
        signal.set_wakeup_fd(wake_write)
        # A handler (not SIG_DFL) so that SIGCHLD is delivered and writes to the wake-up pipe.
        signal.signal(signal.SIGCHLD, lambda *_: None)
        self.selector.register(control, selectors.EVENT_READ, "control")
        self.selector.register(self.wake_read, selectors.EVENT_READ, "wake")

    def serve(self) -> int:
        while True:
            for key, _ in self.selector.select():
                if key.data == "control":
                    if not self._accept():
                        self._shutdown()
                        return 0
                elif key.data == "wake":
                    with contextlib.suppress(BlockingIOError):
                        while os.read(self.wake_read, 4096):
                            pass
                    self._reap()
                else:
                    self._from_worker(key.data, key.fileobj)  # type: ignore[arg-type]

    def _accept(self) -> bool:
        try:
            message, fds, _, _ = socket.recv_fds(self.control, _MESSAGE_MAX, 4)
        except InterruptedError:
            return True
        if not message:
            for fd in fds:
                os.close(fd)
            return False
        if len(fds) != 4:
            for fd in fds:
                os.close(fd)
            return True
        reply = socket.socket(fileno=fds[0])
        try:
            module = str(json.loads(message)["module"])
        except (ValueError, KeyError, TypeError):
            reply.close()
            for fd in fds[1:]:
                os.close(fd)
            return True
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        pid = os.fork()
        if pid == 0:
            # Closed through their owners, so that no object closes a reused number later.
            self.selector.close()
            self.control.close()
            reply.close()
            for other in self.jobs.values():
                other.close()
            _become_job(module, fds[1], fds[2], fds[3])
        for fd in fds[1:]:
            os.close(fd)
        self.jobs[pid] = reply
        self.selector.register(reply, selectors.EVENT_READ, pid)
        _send(reply, {"pid": pid})
        # A fork that ended before it was registered was left for this call to reap.
        self._reap()
        return True

    def _from_worker(self, pid: int, reply: socket.socket) -> None:
        try:
            data = reply.recv(64)
        except OSError:
            data = b""
        # "kill", or the worker gave up on the job (closed its end): either way the fork goes.
        _kill_group(pid)
        if not data:
            self.selector.unregister(reply)

    def _reap(self) -> None:
        while True:
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if info is None:
                return
            pid = info.si_pid
            # Whatever the fork started dies with it; the group cannot have been reused while
            # the fork is an unreaped zombie.
            _kill_group(pid)
            _, status, usage = os.wait4(pid, 0)
            reply = self.jobs.pop(pid, None)
            if reply is None:
                continue
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(reply)
            with contextlib.suppress(OSError):
                _send(
                    reply,
                    {
                        "status": status,
                        "cpu_s": usage.ru_utime + usage.ru_stime,
                        "max_rss_bytes": usage.ru_maxrss * 1024,
                    },
                )
            reply.close()

    def _shutdown(self) -> None:
        for pid in list(self.jobs):
            _kill_group(pid)
        while self.jobs:
            self._reap()
            time.sleep(0.01)


def main() -> int:
    """The zygote process: `main()` with sys.argv [_, CONTROL_FD, WORKER_PID] (see `start`)."""
    control = socket.socket(fileno=int(sys.argv[1]))
    try:
        sandbox.die_with_parent(int(sys.argv[2]))
        _prewarm()
    except Exception as exc:
        _send(control, {"ready": False, "reason": f"{type(exc).__name__}: {exc}"})
        return 1
    _send(control, {"ready": True})
    return _Server(control).serve()


# --------------------------------------------------------------------------------------------
# The worker's side
# --------------------------------------------------------------------------------------------


def _send(sock: socket.socket, message: dict[str, Any]) -> None:
    sock.send(json.dumps(message).encode())


def _receive(sock: socket.socket, timeout_s: float) -> dict[str, Any] | None:
    """One message, or None when the peer closed, sent garbage or said nothing in time."""
    with selectors.DefaultSelector() as selector:
        selector.register(sock, selectors.EVENT_READ)
        if not selector.select(max(timeout_s, 0.0)):
            return None
    try:
        data = sock.recv(_MESSAGE_MAX)
    except OSError:
        return None
    if not data:
        return None
    try:
        message = json.loads(data)
    except ValueError:
        return None
    return message if isinstance(message, dict) else None


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    except PermissionError as exc:
        if exc.errno != errno.EPERM:
            raise


class Zygote:
    """The worker's handle on one zygote process. Thread-safe: jobs may run concurrently."""

    def __init__(self, module: str = ZYGOTE_MODULE, start_timeout_s: float = START_TIMEOUT_S):
        self.module = module
        self.start_timeout_s = start_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None
        self._send_lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        """Start the zygote and wait until it is warm; ZygoteUnavailable with the reason if not."""
        if not supported():
            raise ZygoteUnavailable("this platform cannot fork a zygote")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._proc = subprocess.Popen(
                # Not `-m`: the package imports this module before `-m` would run it again.
                [
                    sys.executable, "-s", "-c",
                    f"import sys; from {self.module} import main; sys.exit(main())",
                    str(theirs.fileno()), str(os.getpid()),
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),),
                start_new_session=True,
                env=sandbox._child_env(),
                cwd="/",
            )
        except OSError as exc:
            ours.close()
            raise ZygoteUnavailable(f"the zygote could not start: {exc}") from None
        finally:
            theirs.close()
        self._control = ours
        ready = _receive(ours, self.start_timeout_s)
        if not ready or not ready.get("ready"):
            why = (ready or {}).get("reason") or "it exited or did not answer in time"
            self.close()
            raise ZygoteUnavailable(f"the zygote did not start: {why}")

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def close(self) -> None:
        """Stop the zygote (its running forks die with it)."""
        if self._control is not None:
            self._control.close()
            self._control = None
        if self._proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
            self._proc.wait()

    def run(
        self,
        module: str,
        job: dict[str, Any],
        *,
        wall_time_s: float,
        max_result_bytes: int,
    ) -> sandbox.ChildOutcome:
        """`sandbox.launch`'s contract, run in a fork of the zygote.

        Raises ZygoteUnavailable when the zygote is gone before the fork started, or died while
        it ran (the fork dies with it): the job then deserves a fresh process, not a failure.
        """
        control, proc = self._control, self._proc
        if control is None or proc is None or proc.poll() is not None:
            raise ZygoteUnavailable("the zygote is not running")
        reply, reply_theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        stdin_read, stdin_write = os.pipe()
        result_read, result_write = os.pipe()
        output_read, output_write = os.pipe()
        theirs = [reply_theirs.fileno(), stdin_read, output_write, result_write]
        start = time.monotonic()
        try:
            try:
                with self._send_lock:
                    socket.send_fds(control, [json.dumps({"module": module}).encode()], theirs)
            except OSError as exc:
                raise ZygoteUnavailable(f"the zygote is gone: {exc}") from None
            finally:
                reply_theirs.close()
                for fd in theirs[1:]:
                    os.close(fd)
            started = _receive(reply, 30.0)
            if started is None or not isinstance(started.get("pid"), int):
                raise ZygoteUnavailable("the zygote did not fork")
            job = {**job, "result_fd": RESULT_FD, "parent_pid": proc.pid}
            with contextlib.suppress(BrokenPipeError), io.FileIO(stdin_write, "wb") as stdin:
                stdin_write = -1
                stdin.write(json.dumps(job).encode())
            deadline = start + wall_time_s
            got = sandbox.collect_pipes(result_read, output_read, deadline, max_result_bytes)
            timed_out = got.timed_out
            if timed_out or got.overflow:
                _ask_kill(reply)
                ended = _receive(reply, 30.0)
            else:
                ended = _receive(reply, min(10.0, max(deadline - time.monotonic(), 0.1)))
                if ended is None and proc.poll() is None:
                    # Pipes closed but the fork lingers (e.g. stuck in a destructor).
                    timed_out = True
                    _ask_kill(reply)
                    ended = _receive(reply, 30.0)
            if ended is None or not isinstance(ended.get("status"), int):
                raise ZygoteUnavailable("the zygote died during the job")
        finally:
            reply.close()
            for fd in (stdin_write, result_read, output_read):
                if fd >= 0:
                    os.close(fd)
        status = int(ended["status"])
        return sandbox.ChildOutcome(
            returncode=os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
            term_signal=os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
            cpu_s=float(ended.get("cpu_s", 0.0)),
            max_rss_bytes=int(ended.get("max_rss_bytes", 0)),
            wall_s=time.monotonic() - start,
            wall_timed_out=timed_out,
            result=bytes(got.result),
            result_overflow=got.overflow,
            output_tail=bytes(got.tail[-sandbox.OUTPUT_TAIL_BYTES:]).decode("utf-8", "replace"),
        )


def _ask_kill(reply: socket.socket) -> None:
    with contextlib.suppress(OSError):
        reply.send(b"kill")


# --------------------------------------------------------------------------------------------
# The process-wide zygote
# --------------------------------------------------------------------------------------------

_lock = threading.Lock()
_shared: Zygote | None = None
# The kernel sends the parent-death signal when the *thread* that started a process ends, and
# jobs may run on short-lived threads: the shared zygote is started from this one, which lives
# as long as the process.
_keeper = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="zygote")
_retry_at = 0.0
# What `run_checkpoint(zygote=None)` does: off for the library and the offline CLI (one job per
# process gains nothing), set from LB_CHECKPOINT_ZYGOTE by the worker's job context.
_by_default = False


def use_by_default(enabled: bool) -> None:
    global _by_default
    _by_default = bool(enabled) and supported()


def by_default() -> bool:
    return _by_default


def shared() -> Zygote | None:
    """This process's zygote, started on first use and again when it died; None when none can
    start (the reason is logged, and no start is tried again for RETRY_AFTER_S)."""
    global _shared, _retry_at
    with _lock:
        if _shared is not None and _shared.alive():
            return _shared
        if _shared is not None:
            log.warning("the checkpoint zygote (pid %s) died; starting another", _shared.pid)
            _shared.close()
            _shared = None
        if time.monotonic() < _retry_at:
            return None
        zygote = Zygote(ZYGOTE_MODULE)
        try:
            _keeper.submit(zygote.start).result()
        except ZygoteUnavailable as exc:
            log.warning("%s; checkpoint jobs start fresh processes", exc)
            _retry_at = time.monotonic() + RETRY_AFTER_S
            return None
        _shared = zygote
        return zygote


def close_shared() -> None:
    global _shared, _retry_at
    with _lock:
        if _shared is not None:
            _shared.close()
        _shared = None
        _retry_at = 0.0


atexit.register(close_shared)


def launch_child(
    module: str,
    job: dict[str, Any],
    *,
    wall_time_s: float,
    max_result_bytes: int,
    zygote: bool,
) -> tuple[sandbox.ChildOutcome, Started]:
    """Run the job in a fork of this process's zygote when `zygote` is set and one is (or can
    be) running, else in a fresh process; returns how it ended and how it was started."""
    if zygote and supported():
        for _ in range(2):
            parent = shared()
            if parent is None:
                break
            try:
                outcome = parent.run(
                    module, job, wall_time_s=wall_time_s, max_result_bytes=max_result_bytes
                )
            except ZygoteUnavailable as exc:
                log.warning("checkpoint job not run by the zygote: %s", exc)
                if parent.alive():
                    # It answers badly but runs other jobs: leave it to them, use a fresh one.
                    break
                continue
            return outcome, "zygote"
    outcome = sandbox.launch(
        module, job, wall_time_s=wall_time_s, max_result_bytes=max_result_bytes
    )
    return outcome, "fresh process"
