"""Content-addressed artifact store (`artifacts/ab/cdef…`) and the compact predictions store."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import io
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from app.config import Settings
from app.models import Submission
from evaluator.predictions import Predictions

_HEX = frozenset("0123456789abcdef")
# Out of space or over a filesystem quota: the store is full, not the request malformed.
_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def is_full(exc: BaseException) -> bool:
    """Whether `exc` says the filesystem under the store has no room left."""
    return isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS


# Temp files a live upload (or a worker's write) owns: each held by an flock on an fd of its
# own until the file is adopted or removed. The lock dies with its process, however it dies, so
# a sweep that can take a file's lock knows no live process owns it.
_OWNED: dict[str, int] = {}
_OWNED_LOCK = threading.Lock()


def own(path: Path) -> None:
    """Mark a temp file as owned by this process (see `ArtifactStore.sweep_orphans`)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise
    with _OWNED_LOCK:
        previous = _OWNED.pop(str(path), None)
        _OWNED[str(path)] = fd
    if previous is not None:
        os.close(previous)


def disown(path: Path) -> None:
    """The temp file was adopted or removed: let its lock go."""
    with _OWNED_LOCK:
        fd = _OWNED.pop(str(path), None)
    if fd is not None:
        os.close(fd)


class ArtifactStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def of(cls, settings: Settings) -> ArtifactStore:
        return cls(settings.artifacts)

    @property
    def tmp_dir(self) -> Path:
        path = self.root / "tmp"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def sweep_tmp(self, older_than_s: float = 86400.0) -> int:
        """Remove temp files left by uploads a crashed process never finished."""
        import time

        cutoff = time.time() - older_than_s
        removed = 0
        for item in self.tmp_dir.iterdir():
            try:
                if item.is_file() and item.stat().st_mtime < cutoff:
                    item.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed

    def sweep_orphans(self, min_age_s: float = 60.0) -> int:
        """Remove temp files no live process owns (their flock is free), at least `min_age_s`
        old (a file just made is locked right after its creation)."""
        cutoff = time.time() - min_age_s
        removed = 0
        for item in self.tmp_dir.iterdir():
            try:
                if not item.is_file() or item.stat().st_mtime > cutoff:
                    continue
                fd = os.open(item, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live upload's
                if str(item) in _OWNED:  # ours and live (flock is per open file, not process)
                    continue
                item.unlink(missing_ok=True)
                removed += 1
            finally:
                os.close(fd)
        return removed

    def path(self, sha256: str) -> Path:
        if len(sha256) != 64 or not set(sha256) <= _HEX:
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        return self.root / sha256[:2] / sha256[2:]

    @staticmethod
    def sync(tmp_path: Path) -> None:
        """Flush a finished temp file to disk: the slow part of adopting it, done before any
        lock is taken."""
        with open(tmp_path, "rb") as f:
            os.fsync(f.fileno())

    def adopt(self, tmp_path: Path, sha256: str, *, synced: bool = False) -> Path:
        """Move a finished temp file (in this store's tmp dir) to its address; dedupe."""
        target = self.path(sha256)
        try:
            if target.exists():
                tmp_path.unlink(missing_ok=True)
                return target
            target.parent.mkdir(parents=True, exist_ok=True)
            if not synced:
                self.sync(tmp_path)
            # Same filesystem, so the rename is atomic: readers see no file or the whole file.
            os.replace(tmp_path, target)
        finally:
            disown(tmp_path)
        return target

    def put_bytes(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        if self.path(sha).exists():
            return sha
        fd, name = tempfile.mkstemp(dir=self.tmp_dir)
        try:
            own(Path(name))
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            self.adopt(Path(name), sha)
        except BaseException:
            # Out of space (or anything else): leave no half-written temp file behind.
            Path(name).unlink(missing_ok=True)
            disown(Path(name))
            raise
        return sha


def save_predictions(store: ArtifactStore, predictions: Predictions) -> str:
    """float32 ctr/cvr/ctcvr in a compressed .npz; returns its sha256 address."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, ctr=predictions.ctr.astype(np.float32),
                        cvr=predictions.cvr.astype(np.float32),
                        ctcvr=predictions.ctcvr.astype(np.float32),
                        columns=np.array(predictions.columns))
    return store.put_bytes(buffer.getvalue())


def read_predictions(store: ArtifactStore, sha256: str) -> Predictions:
    with np.load(store.path(sha256), allow_pickle=False) as data:
        return Predictions(ctr=data["ctr"].astype(np.float64),
                           cvr=data["cvr"].astype(np.float64),
                           ctcvr=data["ctcvr"].astype(np.float64),
                           columns=tuple(str(c) for c in data["columns"]))


def load_predictions(settings: Settings, submission: Submission) -> Predictions | None:
    """The stored predictions of a scored submission (float32 precision), or None."""
    if not submission.predictions_sha256:
        return None
    store = ArtifactStore.of(settings)
    try:
        return read_predictions(store, submission.predictions_sha256)
    except FileNotFoundError:
        return None
