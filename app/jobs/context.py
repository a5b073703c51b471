"""What a running job needs: settings, the database, the artifact store and a way to enqueue."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.db import make_engine, session_factory
from app.storage import ArtifactStore
from evaluator.checkpoint import zygote as checkpoint_zygote

log = logging.getLogger(__name__)

JobKind = Literal["score", "verify", "rescore"]
JOB_KINDS: tuple[JobKind, ...] = ("score", "verify", "rescore")
# (kind, row id): hands a job to the queue. Raises when the queue is unreachable; callers that
# must not fail on that use `enqueue_or_leave_to_reaper`.
Enqueue = Callable[[JobKind, int], None]
# (kind, row id, delay in seconds): the same, run no earlier than the delay.
EnqueueLater = Callable[[JobKind, int, float], None]


@dataclass
class JobContext:
    settings: Settings
    engine: Engine
    factory: sessionmaker[Session]
    store: ArtifactStore
    enqueue: Enqueue
    enqueue_later: EnqueueLater | None = None

    @classmethod
    def create(cls, settings: Settings, enqueue: Enqueue,
               enqueue_later: EnqueueLater | None = None) -> JobContext:
        # Every checkpoint this process runs (scoring, verification) starts as the setting says.
        checkpoint_zygote.use_by_default(settings.checkpoint_zygote)
        engine = make_engine(settings)
        return cls(settings, engine, session_factory(engine), ArtifactStore.of(settings),
                   enqueue, enqueue_later)

    def enqueue_after(self, kind: JobKind, row_id: int, delay_s: float) -> None:
        """Enqueue to run in `delay_s` seconds; at once where the queue cannot delay."""
        if self.enqueue_later is None or delay_s <= 0:
            self.enqueue(kind, row_id)
        else:
            self.enqueue_later(kind, row_id, delay_s)

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def close(self) -> None:
        self.engine.dispose()


_process: tuple[int, str] | None = None


def process_name() -> str:
    """host:pid:token of this process (made again after a fork): its heartbeat row's name and
    the prefix of every lease it takes, so a dead process's leases can be found."""
    global _process
    if _process is None or _process[0] != os.getpid():
        _process = (os.getpid(),
                    f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:8]}")
    return _process[1]


def process_prefix(host: str, pid: int) -> str:
    """The prefix of the lease owners of process `pid` on `host`."""
    return f"{host[:60]}:{pid}:"


def new_owner() -> str:
    return f"{process_name()}:{uuid.uuid4().hex[:8]}"


def enqueue_or_leave_to_reaper(enqueue: Enqueue, kind: JobKind,
                               row_id: int) -> None:
    """Enqueue after the commit. A queue that is down (Redis stopped) must not turn an accepted,
    committed request into an error: the row stays `queued` and the reaper enqueues it again
    after LB_REQUEUE_SECONDS."""
    try:
        enqueue(kind, row_id)
    except Exception:
        log.exception("enqueueing %s job %s failed; the reaper will enqueue it again",
                      kind, row_id)
