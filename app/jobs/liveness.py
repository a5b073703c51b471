"""Liveness: each consumer's heartbeat row, the check that enqueues again what the queue lost,
the hand-back of jobs in hand at shutdown, and what `/health` reports about them.

The database stays the truth. A consumer writes `process_heartbeat` every
LB_PROCESS_BEAT_SECONDS (a row per process, on any machine); `/health` reads their ages. Every
LB_QUEUE_CHECK_SECONDS a consumer compares the `queued` rows with the ids the queue holds and
enqueues the missing ones (marking them in the same transaction, so never twice): a Redis
restarted empty or an enqueue that failed during an outage costs seconds, not
LB_REQUEUE_SECONDS.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from app.db import transaction
from app.models import ProcessHeartbeat, Rescore, Submission, Verification

from . import lease
from .context import JobContext, JobKind, process_name

log = logging.getLogger(__name__)

MODELS: dict[JobKind, lease.LeasedModel] = {
    "score": Submission, "verify": Verification, "rescore": Rescore}
HeldIds = Callable[[], Mapping[JobKind, set[int]]]


# ------------------------------------------------------------------------ heartbeat rows


def beat(factory: sessionmaker[Session], name: str, role: str = "consumer") -> None:
    """Insert or refresh this process's heartbeat row."""
    now = lease.utcnow()
    with transaction(factory) as session:
        updated = session.execute(
            update(ProcessHeartbeat).where(ProcessHeartbeat.name == name)
            .values(beat_at=now).execution_options(synchronize_session=False))
        if updated.rowcount == 0:  # type: ignore[attr-defined]
            session.add(ProcessHeartbeat(name=name, role=role, started_at=now, beat_at=now))


def forget(factory: sessionmaker[Session], name_prefix: str) -> int:
    """Remove the heartbeat rows of a process that stopped (by its name or name prefix)."""
    with transaction(factory) as session:
        result = session.execute(
            delete(ProcessHeartbeat)
            .where(ProcessHeartbeat.name.startswith(name_prefix, autoescape=True))
            .execution_options(synchronize_session=False))
        return int(result.rowcount)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class ConsumerBeat:
    name: str
    role: str
    age_s: float
    alive: bool


def consumers(session: Session, stale_seconds: float,
              now: datetime | None = None) -> list[ConsumerBeat]:
    """Every heartbeat row with its age; `alive` while younger than `stale_seconds`.
    Rows dead for an hour are dropped from the report (a consumer killed without a clean
    stop leaves its row)."""
    now = now or lease.utcnow()
    found = []
    for row in session.execute(select(ProcessHeartbeat)
                               .order_by(ProcessHeartbeat.beat_at.desc())).scalars():
        age = max(0.0, (now - row.beat_at).total_seconds())
        if age > 3600:
            continue
        found.append(ConsumerBeat(row.name, row.role, round(age, 1), age < stale_seconds))
    return found


def job_counts(session: Session, now: datetime | None = None) -> dict[str, int]:
    """The database's own count of jobs, every kind together: `queued`, `running`, and of
    those running, `lapsed` (lease expired: nobody is working on it)."""
    now = now or lease.utcnow()
    counts = {"queued": 0, "running": 0, "lapsed": 0}
    for model in MODELS.values():
        for state, n in session.execute(
                select(model.state, func.count()).where(model.state.in_(("queued", "running")))
                .group_by(model.state)).all():
            counts[str(state)] += int(n)
        counts["lapsed"] += int(session.execute(
            select(func.count()).select_from(model).where(
                model.state == "running", model.lease_expires_at < now)).scalar_one())
    return counts


def waiting_since(state: str, lease_expires_at: datetime | None,
                  now: datetime | None = None) -> datetime | None:
    """When a running job's lease lapsed: from then on no worker is working on it."""
    now = now or lease.utcnow()
    if state == "running" and lease_expires_at is not None and lease_expires_at < now:
        return lease_expires_at
    return None


# -------------------------------------------------------------------- queue and shutdown


def requeue_missing(ctx: JobContext, held: Mapping[JobKind, set[int]]) -> dict[JobKind, list[int]]:
    """Enqueue the queued rows of every kind the queue does not hold. Returns what it enqueued."""
    done: dict[JobKind, list[int]] = {}
    for kind, model in MODELS.items():
        ids = lease.missing_from_queue(ctx, model, held.get(kind, set()),
                                       ctx.settings.queue_settle_seconds)
        for row_id in ids:
            ctx.enqueue(kind, row_id)
        if ids:
            log.warning("enqueued again %s jobs missing from the queue: %s", kind, ids)
            done[kind] = ids
    return done


def hand_back_in_hand(ctx: JobContext) -> list[tuple[JobKind, int]]:
    """At shutdown, after the grace period: every job this process still holds goes back to the
    queue without spending an attempt, and is enqueued again at once. The threads working on
    them may go on, but their lease is gone: they write nothing."""
    from . import runner  # only a consumer runs jobs; the API imports this module too

    with runner.IN_HAND_LOCK:
        in_hand = list(runner.IN_HAND.items())
    handed: list[tuple[JobKind, int]] = []
    for owner, (kind, model, row_id) in in_hand:
        try:
            if lease.hand_back(ctx, model, row_id, owner):
                handed.append((kind, row_id))
                ctx.enqueue(kind, row_id)
        except Exception:  # the queue check or the lease's expiry finishes it
            log.exception("handing back %s job %s at shutdown failed", kind, row_id)
    if handed:
        log.warning("shutdown: handed back %s, no attempt spent", handed)
    return handed


class ConsumerLiveness:
    """A thread of each consumer process: its heartbeat row, the queue check, and one reaper
    pass at start (leases `serve` ended for a consumer it saw die are put back at once)."""

    def __init__(self, ctx: JobContext, held: HeldIds, role: str = "consumer",
                 reap: Callable[[JobContext], int] | None = None) -> None:
        self.ctx = ctx
        self.held = held
        self.role = role
        self.reap = reap
        self.name = process_name()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="liveness", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        try:
            forget(self.ctx.factory, self.name)
        except Exception:  # /health ages it out
            log.exception("removing the heartbeat row %s failed", self.name)

    def _run(self) -> None:
        settings = self.ctx.settings
        reap = self.reap
        if reap is not None:
            self._try("the first reaper pass", lambda: reap(self.ctx))
        next_beat = next_check = time.monotonic()
        step = min(settings.process_beat_seconds, settings.queue_check_seconds, 1.0)
        while True:
            now = time.monotonic()
            if now >= next_beat:
                self._try("the heartbeat", lambda: beat(self.ctx.factory, self.name, self.role))
                next_beat = now + settings.process_beat_seconds
            if now >= next_check:
                self._try("the queue check", lambda: requeue_missing(self.ctx, self.held()))
                next_check = now + settings.queue_check_seconds
            if self._stop.wait(max(0.05, min(step, min(next_beat, next_check) - now))):
                return

    @staticmethod
    def _try(what: str, action: Callable[[], object]) -> None:
        try:
            action()
        except Exception as exc:  # the database or the queue is down: next period
            log.warning("%s failed: %s: %s", what, type(exc).__name__, exc)
