"""The process sandbox that untrusted TorchScript runs in.

Two halves:

- the child half (`isolate_namespaces`, `restrict_filesystem`, `apply_limits`,
  `drop_privileges`), which the child process applies to itself, in that order, before it loads
  the participant's archive;
- the parent half (`launch`), which starts the child in its own session with a clean
  environment, feeds it its job on stdin, collects its result pipe and output within a wall-time
  limit, kills its process group when done, and reports how it ended (exit status and rusage).

Namespaces and Landlock are per thread, so the child applies them while it still has exactly one
thread; every thread torch starts later inherits them.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import resource
import selectors
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
_MS_RDONLY = 0x1
_MS_NOSUID = 0x2
_MS_NODEV = 0x4
_MS_NOEXEC = 0x8
_MS_REC = 0x4000
_MS_PRIVATE = 1 << 18
_PR_SET_PDEATHSIG = 1
_PR_GET_PDEATHSIG = 2
_PR_SET_DUMPABLE = 4
_PR_SET_NO_NEW_PRIVS = 38

NOBODY_UID = 65534
NOBODY_GID = 65534

# Where local services keep their unix sockets (PostgreSQL with trust auth, Redis, Docker) and
# where a write could be picked up by another process; hidden behind empty read-only tmpfs.
DEFAULT_HIDDEN_PATHS: tuple[str, ...] = ("/run", "/var/run", "/tmp", "/var/tmp", "/dev/shm")

OUTPUT_TAIL_BYTES = 16 << 10


class SandboxError(Exception):
    """The sandbox could not be set up; the evaluator refuses to run untrusted code without it."""


@dataclass(frozen=True)
class Limits:
    """Resource limits of one checkpoint run.

    `cpu_time_s` defaults to the wall time times the cores, as inference uses every core;
    `memory_bytes` to 16 GiB or three quarters of the machine's memory, whichever is less.
    Memory is capped with RLIMIT_DATA rather than RLIMIT_AS: CUDA and memory-mapped test sets
    reserve far more address space than they use, and RLIMIT_DATA counts only private writable
    memory, which is what a runaway allocation consumes.
    """

    wall_time_s: float = 1800.0
    cpu_time_s: float | None = None
    memory_bytes: int = field(default_factory=lambda: default_memory_bytes())
    max_open_files: int = 256
    gpu_memory_fraction: float = 0.9

    def cpu_seconds(self) -> int:
        if self.cpu_time_s is not None:
            return max(1, int(self.cpu_time_s))
        return max(1, int(self.wall_time_s * available_cores()))


@dataclass(frozen=True)
class SandboxPolicy:
    """What the child applies to itself; travels to it as JSON."""

    limits: Limits = field(default_factory=Limits)
    read_paths: tuple[str, ...] = ()
    device_paths: tuple[str, ...] = ()
    hidden_paths: tuple[str, ...] = DEFAULT_HIDDEN_PATHS
    uid: int = NOBODY_UID
    gid: int = NOBODY_GID

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SandboxPolicy:
        return cls(
            limits=Limits(**data["limits"]),
            read_paths=tuple(data["read_paths"]),
            device_paths=tuple(data["device_paths"]),
            hidden_paths=tuple(data["hidden_paths"]),
            uid=int(data["uid"]),
            gid=int(data["gid"]),
        )


def default_memory_bytes() -> int:
    """16 GiB, or three quarters of the machine's memory when it has less: past that the
    kernel's OOM killer would end the run first, with a less helpful reason."""
    try:
        physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return 16 << 30
    return int(min(16 << 30, physical * 3 // 4))


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) or 1


# --------------------------------------------------------------------------------------------
# Child half
# --------------------------------------------------------------------------------------------


def _libc() -> ctypes.CDLL:
    # The symbols already loaded into the process include libc's; find_library would spawn gcc.
    return ctypes.CDLL(None, use_errno=True)


def thread_count() -> int:
    return len(os.listdir("/proc/self/task"))


def isolate_namespaces(
    hidden_paths: tuple[str, ...], keep_visible: tuple[str, ...] = ()
) -> list[str]:
    """Enter a new network namespace (only a down loopback) and hide local sockets.

    A hidden path that holds one of `keep_visible` (say the Python installation of a CI
    checkout under /tmp) stays visible. Returns the measures taken. Raises SandboxError when
    no network namespace can be had: running without one would let the participant's code
    reach the network.
    """
    if thread_count() != 1:
        raise SandboxError(f"{thread_count()} threads exist before isolation; expected 1")
    libc = _libc()
    taken: list[str] = []
    if os.geteuid() == 0:
        if libc.unshare(CLONE_NEWNET | CLONE_NEWNS) != 0:
            err = ctypes.get_errno()
            raise SandboxError(f"unshare(CLONE_NEWNET|CLONE_NEWNS) failed: {os.strerror(err)}")
        taken.append("network namespace")
        taken.extend(_hide_paths(libc, hidden_paths, keep_visible))
    else:
        # An unprivileged user may create a network namespace inside a user namespace of its own.
        if libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise SandboxError(
                f"unshare(CLONE_NEWUSER|CLONE_NEWNET) failed: {os.strerror(err)} "
                "(unprivileged user namespaces may be disabled; run the worker as root)"
            )
        taken.append("network namespace (in a user namespace)")
    return taken


def _holds(folder: str, path: str) -> bool:
    folder, path = os.path.realpath(folder), os.path.realpath(path)
    return os.path.commonpath([folder, path]) == folder


_SYS_OPEN_TREE = 428
_SYS_MOVE_MOUNT = 429
_OPEN_TREE_CLONE = 1
_AT_RECURSIVE = 0x8000
_AT_FDCWD = -100
_MOVE_MOUNT_F_EMPTY_PATH = 0x4
_MS_REMOUNT = 0x20

# The hidden /tmp doubles as the child's temporary folder: an empty tmpfs of its own mount
# namespace, which it can list but not write (file size 0, Landlock).
PRIVATE_TMP = "/tmp"


def _mount(libc: ctypes.CDLL, source: bytes | None, target: str, fstype: bytes | None,
           flags: int, data: bytes | None, what: str) -> None:
    if libc.mount(source, target.encode(), fstype, flags, data) != 0:
        err = ctypes.get_errno()
        raise SandboxError(f"{what} failed: {os.strerror(err)}")


def _detached_copy(libc: ctypes.CDLL, path: str) -> int:
    """A detached copy of the mount tree at `path` (open_tree), to put back once the folder
    above it is covered."""
    fd = int(libc.syscall(_SYS_OPEN_TREE, _AT_FDCWD, path.encode(),
                          _OPEN_TREE_CLONE | _AT_RECURSIVE))
    if fd < 0:
        err = ctypes.get_errno()
        raise SandboxError(f"open_tree({path}) failed: {os.strerror(err)}")
    return fd


def _attach(libc: ctypes.CDLL, fd: int, target: str) -> None:
    if libc.syscall(_SYS_MOVE_MOUNT, fd, b"", _AT_FDCWD, target.encode(),
                    _MOVE_MOUNT_F_EMPTY_PATH) != 0:
        err = ctypes.get_errno()
        raise SandboxError(f"move_mount onto {target} failed: {os.strerror(err)}")


def _outermost(paths: list[str]) -> list[str]:
    """The paths not inside another of them."""
    real = sorted({os.path.realpath(p) for p in paths})
    return [p for p in real if not any(q != p and _holds(q, p) for q in real)]


def _hide_paths(
    libc: ctypes.CDLL, hidden_paths: tuple[str, ...], keep_visible: tuple[str, ...]
) -> list[str]:
    """Cover each hidden folder with an empty tmpfs. What must stay visible below one (say the
    Python installation of a CI checkout under /tmp) is put back on top of the empty tmpfs, on
    its own, so that nothing else of the folder (other files, unix sockets) can be seen."""
    # Keep the mounts below from propagating back to the host's namespace.
    if libc.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None) != 0:
        err = ctypes.get_errno()
        raise SandboxError(f"making / private in the mount namespace failed: {os.strerror(err)}")
    hidden: list[str] = []
    kept: list[str] = []
    flags = _MS_NOSUID | _MS_NODEV | _MS_NOEXEC
    for path in _outermost([p for p in hidden_paths if os.path.isdir(p)]):
        if any(_holds(needed, path) for needed in keep_visible if os.path.exists(needed)):
            # The folder itself (or one above it) is needed: it cannot be covered.
            kept.append(path)
            continue
        inside = _outermost(
            [p for p in keep_visible if os.path.exists(p) and _holds(path, p)]
        )
        # Whether each is a folder, known only until the cover hides it.
        copies = [(p, os.path.isdir(p), _detached_copy(libc, p)) for p in inside]
        try:
            _mount(libc, b"tmpfs", path, b"tmpfs", flags, b"size=1m,mode=0755",
                   f"hiding {path}")
            for needed, is_dir, fd in copies:
                if is_dir:
                    os.makedirs(needed, exist_ok=True)
                else:
                    os.makedirs(os.path.dirname(needed), exist_ok=True)
                    with open(needed, "w"):
                        pass
                _attach(libc, fd, needed)
        finally:
            for _, _, fd in copies:
                os.close(fd)
        _mount(libc, None, path, None, _MS_REMOUNT | _MS_RDONLY | flags, b"size=1m",
               f"making the cover of {path} read-only")
        hidden.append(path)
        if inside:
            kept.extend(inside)
    measures = [f"hidden: {', '.join(hidden)}"] if hidden else []
    if PRIVATE_TMP in hidden:
        measures.append(f"private temporary folder: {PRIVATE_TMP}")
    if kept:
        measures.append(f"left visible (needed to run): {', '.join(kept)}")
    return measures


def use_private_tmp(measures: list[str]) -> str:
    """Point TMPDIR and `tempfile` at the private temporary folder when /tmp was covered, else
    at a folder that does not exist (so nothing is written to a shared one); returns it.
    tempfile is told directly, as it would probe every candidate for writing and give up."""
    import tempfile

    private = f"private temporary folder: {PRIVATE_TMP}" in measures
    folder = PRIVATE_TMP if private else "/nonexistent"
    os.environ["TMPDIR"] = folder
    tempfile.tempdir = folder
    return folder


def seal_reads() -> str:
    """A second Landlock layer that refuses every file read, for after the last lazy import:
    code that runs from here on (the participant's, `__setstate__` while loading included)
    can read no file at all, not even the Python installation the first layer allows."""
    import landlockpy

    if landlockpy.abi_version() < 1:
        return ""
    fs = landlockpy.AccessFS
    with landlockpy.Ruleset(handled_fs=fs.READ_FILE | fs.READ_DIR | fs.EXECUTE) as ruleset:
        ruleset.restrict()
    return "no file reads"


def restrict_filesystem(read_paths: tuple[str, ...], device_paths: tuple[str, ...]) -> str:
    """Landlock: read-only access to `read_paths`, read/write/ioctl on `device_paths`, nothing
    else; TCP bind/connect and signals outside the sandbox refused where the kernel can.

    Returns what was applied; "" when the kernel has no Landlock (the file-size rlimit still
    stops writes of any content).
    """
    import landlockpy

    abi = landlockpy.abi_version()
    if abi < 1:
        return ""
    fs = landlockpy.AccessFS
    read = fs.READ_FILE | fs.READ_DIR | fs.EXECUTE
    with landlockpy.Ruleset(
        scoped=landlockpy.Scope.ABSTRACT_UNIX_SOCKET | landlockpy.Scope.SIGNAL
    ) as ruleset:
        for path in read_paths:
            if os.path.exists(path):
                ruleset.allow_path(path, read if os.path.isdir(path) else fs.READ_FILE)
        for path in device_paths:
            if os.path.exists(path):
                ruleset.allow_path(path, fs.READ_FILE | fs.WRITE_FILE | fs.IOCTL_DEV)
        # TSYNC (ABI 8) also restricts threads that already exist, e.g. the CUDA driver's;
        # best-effort mode drops it on older kernels.
        ruleset.restrict(landlockpy.RestrictFlag.TSYNC)
    return f"landlock ABI {abi}"


def apply_limits(limits: Limits) -> None:
    """Process-wide rlimits; the file-size limit of 0 makes every write to a file fail."""
    # With SIGXFSZ ignored a write past the limit fails with EFBIG instead of killing the child,
    # so the participant gets the load error rather than a bare signal.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    cpu = limits.cpu_seconds()
    settings = (
        (resource.RLIMIT_CORE, 0, 0),
        (resource.RLIMIT_FSIZE, 0, 0),
        # The soft limit sends SIGXCPU; the hard one, a second later, SIGKILL.
        (resource.RLIMIT_CPU, cpu, cpu + 1),
        (resource.RLIMIT_DATA, limits.memory_bytes, limits.memory_bytes),
        (resource.RLIMIT_NOFILE, limits.max_open_files, limits.max_open_files),
    )
    for which, soft, hard in settings:
        _, current_hard = resource.getrlimit(which)
        if current_hard != resource.RLIM_INFINITY:
            hard = min(hard, current_hard)
            soft = min(soft, hard)
        resource.setrlimit(which, (soft, hard))


def drop_privileges(uid: int, gid: int) -> str:
    """When root, become `uid`/`gid` for good (glibc applies it to every thread)."""
    libc = _libc()
    if os.geteuid() == 0:
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
        if os.geteuid() == 0 or os.getuid() == 0:
            raise SandboxError("could not drop root")
        dropped = f"uid {uid}"
    else:
        dropped = f"uid {os.geteuid()}"
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise SandboxError("prctl(PR_SET_NO_NEW_PRIVS) failed")
    libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
    return dropped


def die_with_parent(parent_pid: int) -> None:
    """Have the kernel kill this process if the worker that started it dies, so that no orphan
    keeps running (and holding the GPU) past its wall-time limit. Call it after the last
    change of user: changing credentials clears the setting."""
    libc = _libc()
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise SandboxError("prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent_pid:
        # The parent died before the setting took effect.
        os._exit(1)


def parent_death_signal() -> int:
    value = ctypes.c_int(0)
    _libc().prctl(_PR_GET_PDEATHSIG, ctypes.byref(value), 0, 0, 0)
    return value.value


def default_read_paths() -> tuple[str, ...]:
    """What Python and torch need to read after the sandbox is up (lazy imports, shared
    libraries, CPU topology); the participant's code can read these and nothing else."""
    import evaluator

    package = Path(evaluator.__file__).resolve().parent
    paths = {
        sys.prefix,
        sys.base_prefix,
        os.path.realpath(sys.prefix),
        os.path.realpath(sys.base_prefix),
        os.path.dirname(os.path.realpath(sys.executable)),
        str(package),
        "/usr/lib",
        "/usr/lib64",
        "/usr/local/lib",
        "/lib",
        "/lib64",
        "/etc/ld.so.cache",
        "/proc/cpuinfo",
        "/proc/meminfo",
        "/sys/devices/system/cpu",
        "/dev/urandom",
    }
    for entry in sys.path:
        if entry and os.path.isdir(entry) and "site-packages" in entry:
            paths.add(os.path.realpath(entry))
    return tuple(sorted(paths))


def gpu_paths() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(read paths, device paths) the CUDA driver needs once initialised."""
    devices = ["/dev/null"]
    with contextlib.suppress(OSError):
        devices += [f"/dev/{name}" for name in os.listdir("/dev") if name.startswith("nvidia")]
    reads = ("/proc/driver/nvidia", "/sys/bus/pci", "/sys/devices", "/proc/self")
    return reads, tuple(devices)


# --------------------------------------------------------------------------------------------
# Parent half
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChildOutcome:
    """How a sandboxed child ended."""

    returncode: int | None
    term_signal: int | None
    cpu_s: float
    max_rss_bytes: int
    wall_s: float
    wall_timed_out: bool
    result: bytes
    result_overflow: bool
    output_tail: str


def _child_env() -> dict[str, str]:
    import evaluator

    env = {
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HOME": "/nonexistent",
        # One thread until the sandbox is up; the child raises torch's count afterwards.
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONPATH": str(Path(evaluator.__file__).resolve().parent.parent),
    }
    for name in ("CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES"):
        if name in os.environ:
            env[name] = os.environ[name]
    return env


def launch(
    module: str,
    job: dict[str, Any],
    *,
    wall_time_s: float,
    max_result_bytes: int,
) -> ChildOutcome:
    """Run `python -m module` with `job` as JSON on stdin, plus `result_fd` in it: a pipe.

    The child writes its result to that pipe (stdout is the participant's to print on; stdout
    and stderr are collected together, keeping the last 16 KiB).
    """
    result_read, result_write = os.pipe()
    output_read, output_write = os.pipe()
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-s", "-m", module],
            stdin=subprocess.PIPE,
            stdout=output_write,
            stderr=output_write,
            pass_fds=(result_write,),
            start_new_session=True,
            env=_child_env(),
            cwd="/",
        )
    except OSError:
        for fd in (result_read, result_write, output_read, output_write):
            os.close(fd)
        raise
    os.close(output_write)
    os.close(result_write)
    job = {**job, "result_fd": result_write, "parent_pid": os.getpid()}
    try:
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(job).encode())
        proc.stdin.close()
    except BrokenPipeError:
        pass
    deadline = start + wall_time_s
    collected = collect_pipes(result_read, output_read, deadline, max_result_bytes)
    result, tail = collected.result, collected.tail
    overflow, timed_out = collected.overflow, collected.timed_out
    os.close(result_read)
    os.close(output_read)
    if timed_out or overflow:
        _kill_group(proc.pid)
    elif not _wait_briefly(proc.pid, min(10.0, max(deadline - time.monotonic(), 0.1))):
        # Pipes closed but the process lingers (e.g. stuck in a destructor).
        timed_out = True
        _kill_group(proc.pid)
    # Nothing started by the child may outlive the job; the group still exists while the child
    # is an unreaped zombie, so its id cannot have been reused yet.
    _kill_group(proc.pid)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - start
    return ChildOutcome(
        returncode=os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
        term_signal=os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
        cpu_s=usage.ru_utime + usage.ru_stime,
        max_rss_bytes=usage.ru_maxrss * 1024,
        wall_s=wall,
        wall_timed_out=timed_out,
        result=bytes(result),
        result_overflow=overflow,
        output_tail=bytes(tail[-OUTPUT_TAIL_BYTES:]).decode("utf-8", "replace"),
    )


@dataclass
class Collected:
    result: bytearray
    tail: bytearray
    overflow: bool
    timed_out: bool


def collect_pipes(
    result_read: int, output_read: int, deadline: float, max_result_bytes: int
) -> Collected:
    """Read the result pipe (at most `max_result_bytes`) and the output's tail until both
    close, the result overflows or the deadline passes (a fresh child's and a zygote fork's)."""
    result = bytearray()
    tail = bytearray()
    overflow = timed_out = False
    with selectors.DefaultSelector() as selector:
        selector.register(result_read, selectors.EVENT_READ, "result")
        selector.register(output_read, selectors.EVENT_READ, "output")
        open_fds = 2
        while open_fds:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            for key, _ in selector.select(timeout=min(remaining, 1.0)):
                fd = key.fd
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    selector.unregister(fd)
                    open_fds -= 1
                elif key.data == "result":
                    if len(result) + len(chunk) > max_result_bytes:
                        overflow = True
                        open_fds = 0
                        break
                    result += chunk
                else:
                    tail += chunk
                    if len(tail) > 2 * OUTPUT_TAIL_BYTES:
                        del tail[: len(tail) - OUTPUT_TAIL_BYTES]
    return Collected(result, tail, overflow, timed_out)


def _wait_briefly(pid: int, timeout_s: float) -> bool:
    """Whether the child has exited within `timeout_s` (it stays a zombie for wait4)."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        try:
            info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        if info is not None:
            return True
        time.sleep(0.02)
    return False


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    except PermissionError as exc:
        if exc.errno != errno.EPERM:
            raise
