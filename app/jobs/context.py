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


@dataclass
class JobContext:
    settings: Settings
    engine: Engine
    factory: sessionmaker[Session]
    store: ArtifactStore
    enqueue: Enqueue

    @classmethod
    def create(cls, settings: Settings, enqueue: Enqueue) -> JobContext:
        # Every checkpoint this process runs (scoring, verification) starts as the setting says.
        checkpoint_zygote.use_by_default(settings.checkpoint_zygote)
        engine = make_engine(settings)
        return cls(settings, engine, session_factory(engine), ArtifactStore.of(settings),
                   enqueue)

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def close(self) -> None:
        self.engine.dispose()


def new_owner() -> str:
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


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
