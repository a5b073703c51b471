"""The Huey queue: SqliteHuey by default, RedisHuey when LB_REDIS_URL is set.

Tasks carry only a row id; the job reads everything else from the database. A `Queue` is made
once per process (the API keeps it on `app.state`, the CLI makes its own) and handed to whoever
enqueues. The job code and its context (with its own engine) are loaded only when a task first
runs, so a process that only enqueues (the API) neither imports the workers' code nor opens
their connections.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from huey import Huey, RedisHuey, SqliteHuey
from huey.consumer import Consumer, Scheduler

from app.config import Settings

from .context import JOB_KINDS, JobContext, JobKind

log = logging.getLogger(__name__)

QUEUE_NAME = "leaderboard"

# Five retries 3 s apart outlast ~1 min of lock contention (SQLite waits 10 s per try); after
# that the reaper's re-enqueue (LB_REQUEUE_SECONDS) is the safety net.
TASK_RETRIES = 5
TASK_RETRY_DELAY_S = 3



def job_runs() -> dict[JobKind, Callable[[JobContext, int], str]]:
    # Imported here: only a consumer runs jobs.
    from .scoring import rescore, score_submission
    from .verification import verify

    return {"score": score_submission, "verify": verify, "rescore": rescore}

# The names stay what earlier releases enqueued, so jobs already in a queue still run.
TASK_NAMES: dict[JobKind, str] = {
    "score": "score_submission", "verify": "verify_submission", "rescore": "rescore_submission"}


# A consumer's Redis calls block up to Huey's 1 s read timeout (BRPOP): its socket timeout
# must be longer, or every idle poll would be a timeout error.
CONSUMER_SOCKET_TIMEOUT_S = 10.0


def make_huey(settings: Settings, *, immediate: bool = False, consumer: bool = False) -> Huey:
    if settings.redis_url:
        from redis import ConnectionPool

        # The API's enqueue gives up after LB_ENQUEUE_TIMEOUT_SECONDS on a frozen Redis: the
        # row is committed already and the queue check enqueues it once Redis answers.
        timeout = CONSUMER_SOCKET_TIMEOUT_S if consumer else settings.enqueue_timeout_seconds
        pool = ConnectionPool.from_url(settings.redis_url, socket_timeout=timeout,
                                       socket_connect_timeout=timeout)
        return RedisHuey(QUEUE_NAME, connection_pool=pool, immediate=immediate, results=False)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return SqliteHuey(QUEUE_NAME, filename=str((settings.data_dir / "queue.db").resolve()),
                      immediate=immediate, results=False)


class Queue:
    def __init__(self, settings: Settings, *, immediate: bool = False,
                 consumer: bool = False) -> None:
        self.settings = settings
        self.huey = make_huey(settings, immediate=immediate, consumer=consumer)
        self._context: JobContext | None = None
        self._lock = threading.Lock()
        self._tasks: dict[JobKind, Any] = {kind: self._register(kind) for kind in JOB_KINDS}

        def always(_dt: datetime) -> bool:
            return True

        # The consumer's scheduler decides how often this runs (`consumer` sets the period).
        @self.huey.periodic_task(always, name="reap_expired_leases")  # type: ignore[untyped-decorator]
        def reap_task() -> int:
            from .reaper import reap_and_requeue

            return reap_and_requeue(self.context())

        # Next to the reaper, on its schedule; the sweep itself runs once per
        # LB_RETENTION_SWEEP_SECONDS (app/jobs/retention.py).
        @self.huey.periodic_task(always, name="sweep_failed_artifacts")  # type: ignore[untyped-decorator]
        def retention_task() -> int:
            from .retention import sweep_when_due

            return sweep_when_due(self.context())

    def _register(self, kind: JobKind) -> Any:
        # A task that raises (a claim that met "database is locked", a DB connection cut before
        # the lease was taken) is dropped by Huey unless it retries; the lease makes retries
        # harmless.
        @self.huey.task(name=TASK_NAMES[kind], retries=TASK_RETRIES,  # type: ignore[untyped-decorator]
                        retry_delay=TASK_RETRY_DELAY_S)
        def task(row_id: int) -> str:
            return job_runs()[kind](self.context(), row_id)

        return task

    def context(self) -> JobContext:
        with self._lock:
            if self._context is None:
                self._context = JobContext.create(self.settings, self.enqueue,
                                                  self.enqueue_later)
            return self._context

    def enqueue(self, kind: JobKind, row_id: int) -> None:
        self._tasks[kind](row_id)

    def enqueue_later(self, kind: JobKind, row_id: int, delay_s: float) -> None:
        if self.huey.immediate:  # nothing would ever run a scheduled task
            self.enqueue(kind, row_id)
            return
        self._tasks[kind].schedule(args=(row_id,), delay=delay_s)

    def depth(self) -> int:
        return int(self.huey.pending_count())

    def held_ids(self) -> dict[JobKind, set[int]]:
        """The row ids the queue holds, pending or scheduled (a retry's delay), by kind."""
        kinds = {name: kind for kind, name in TASK_NAMES.items()}
        held: dict[JobKind, set[int]] = {kind: set() for kind in JOB_KINDS}
        for task in [*self.huey.pending(), *self.huey.scheduled()]:
            kind = kinds.get(task.name)
            if kind is not None and task.args:
                held[kind].add(int(task.args[0]))
        return held

    def close(self) -> None:
        with self._lock:
            context, self._context = self._context, None
        if context is not None:
            context.close()

    def consumer(self, *, workers: int | None = None) -> Consumer:
        period = self.settings.reaper_seconds

        class ReaperScheduler(Scheduler):  # type: ignore[misc]
            # Huey checks periodic tasks once a minute by default; the reaper wants its own.
            periodic_task_seconds = period

        class LeaderboardConsumer(Consumer):  # type: ignore[misc]
            scheduler_class = ReaperScheduler

            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                # Huey stops at once on its "interrupt" signal: the job in hand was abandoned,
                # its row left `running` for a whole lease, an attempt spent. Both SIGTERM
                # (docker, systemd, Kubernetes) and SIGINT (Ctrl-C, `serve`) are graceful here:
                # the jobs in hand get LB_STOP_GRACE_SECONDS, then `worker` hands them back. A
                # second signal stops at once (Huey's own rule), and they are handed back too.
                self._signal_actions[signal.SIGTERM] = (False, True)
                self._signal_actions[signal.SIGINT] = (False, True)

        return LeaderboardConsumer(
            self.huey, workers=workers or self.settings.consumer_workers,
            worker_type="thread", periodic=True, check_worker_health=True,
            graceful_signal="TERM", shutdown_timeout=self.settings.stop_grace_seconds,
        )
