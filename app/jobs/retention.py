"""Deleting the artifacts of failed submissions after a retention period (issue 14, item 1).

Failing checkpoints of up to 1 GiB each used to stay in the store for good. The worker's
periodic sweep deletes, LB_FAILED_ARTIFACT_RETENTION_SECONDS after a submission failed, the
artifacts (prediction file, checkpoint, stored predictions) that no other submission still
needs. The row and its reason stay; each deletion is audit-logged (action
`artifacts_deleted`, actor none: the service).

The store is content-addressed, so an upload of the same bytes can adopt the file in the moment
between the sweep's look at the references and the deletion. A sweep therefore deletes in two
passes: the first moves an unreferenced artifact into `artifacts/trash/` (a rename, atomic);
the next, at least one sweep period later, looks at the references again and deletes it, or
puts it back if a new submission refers to it meanwhile.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from app import audit
from app.db import transaction
from app.models import Submission

from .context import JobContext
from .lease import utcnow

log = logging.getLogger(__name__)

SHA_COLUMNS = (Submission.file_sha256, Submission.checkpoint_sha256,
               Submission.predictions_sha256)


@dataclass(frozen=True)
class SweepResult:
    trashed: int
    deleted: int
    restored: int
    bytes_deleted: int


def _expired_failed(ctx: JobContext, session: Session) -> dict[int, set[str]]:
    cutoff = utcnow() - timedelta(seconds=ctx.settings.failed_artifact_retention_seconds)
    rows = session.execute(
        select(Submission.id, *SHA_COLUMNS).where(
            Submission.state == "failed", Submission.finished_at < cutoff,
            or_(*(c.is_not(None) for c in SHA_COLUMNS)))).all()
    return {row[0]: {sha for sha in row[1:] if sha} for row in rows}


def _still_needed(session: Session, shas: Iterable[str], expired: Iterable[int]) -> set[str]:
    """The artifacts among `shas` that a submission other than the expired ones refers to."""
    wanted = set(shas)
    if not wanted:
        return set()
    gone = set(expired)
    needed: set[str] = set()
    for column in SHA_COLUMNS:
        query = select(Submission.id, column).where(column.in_(wanted))
        needed |= {str(sha) for sid, sha in session.execute(query).all() if sid not in gone}
    return needed


def _trash(ctx: JobContext) -> Path:
    path = ctx.store.root / "trash"
    path.mkdir(parents=True, exist_ok=True)
    return path


def sweep(ctx: JobContext, *, settle_seconds: float | None = None) -> SweepResult:
    """One pass: delete what the last pass trashed (if still unneeded), trash what expired."""
    settle = ctx.settings.retention_sweep_seconds if settle_seconds is None else settle_seconds
    trash = _trash(ctx)
    deleted = restored = bytes_deleted = trashed = 0
    with transaction(ctx.factory) as session:
        expired = _expired_failed(ctx, session)
        owners: dict[str, list[int]] = {}
        for sid, shas in expired.items():
            for sha in shas:
                owners.setdefault(sha, []).append(sid)
        waiting = [p for p in trash.iterdir() if p.is_file()]
        sizes: dict[Path, os.stat_result] = {}
        for item in list(waiting):
            try:
                sizes[item] = item.stat()
            except FileNotFoundError:  # another worker's sweep took it
                waiting.remove(item)
        needed = _still_needed(session, [p.name for p in waiting] + list(owners), expired)
        now = time.time()
        freed: dict[int, list[str]] = {}
        for item in waiting:
            sha = item.name
            if sha in needed or sha not in owners:
                # A new submission (or an organiser's reset of the row) wants it back.
                target = ctx.store.path(sha)
                target.parent.mkdir(parents=True, exist_ok=True)
                with contextlib.suppress(FileNotFoundError):
                    os.replace(item, target)  # same bytes as any file already there
                    restored += 1
                continue
            if now - sizes[item].st_ctime < settle:
                continue
            size = sizes[item].st_size
            try:
                item.unlink()
            except FileNotFoundError:
                continue
            deleted += 1
            bytes_deleted += size
            for sid in owners[sha]:
                freed.setdefault(sid, []).append(sha)
        for sid, freed_shas in sorted(freed.items()):
            audit.record(session, None, "artifacts_deleted", "submission", sid,
                         {"artifacts": sorted(freed_shas),
                          "retention_seconds": ctx.settings.failed_artifact_retention_seconds})
        for sha in owners:
            if sha in needed:
                continue
            with contextlib.suppress(FileNotFoundError):
                os.replace(ctx.store.path(sha), trash / sha)
                trashed += 1
    if deleted or trashed or restored:
        log.info("retention sweep: %d artifacts trashed, %d deleted (%d bytes), %d restored",
                 trashed, deleted, bytes_deleted, restored)
    return SweepResult(trashed, deleted, restored, bytes_deleted)


_last_sweep = float("-inf")
_sweep_lock = threading.Lock()


def sweep_when_due(ctx: JobContext) -> int:
    """The periodic task's body: a sweep once per LB_RETENTION_SWEEP_SECONDS in this process
    (the scheduler ticks at the reaper's period). Returns the artifacts deleted."""
    global _last_sweep
    with _sweep_lock:
        now = time.monotonic()
        if now - _last_sweep < ctx.settings.retention_sweep_seconds:
            return 0
        _last_sweep = now
    return sweep(ctx).deleted
