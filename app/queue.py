"""The Huey queue: SqliteHuey by default, RedisHuey when LB_REDIS_URL is set.

Tasks carry only ids; the worker reads everything else from the database. `configure` builds the
queue and the worker context for a Settings; `enqueue_*` use the configured one (or one built
from the environment on first use), so organiser tools can call `enqueue_scoring(id)` directly.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from huey import Huey, RedisHuey, SqliteHuey
from huey.consumer import Consumer, Scheduler

from app.config import Settings
from app.worker import WorkerContext, reap, reap_verifications, score_submission, verify

log = logging.getLogger(__name__)

QUEUE_NAME = "leaderboard"


@dataclass
class Queue:
    huey: Huey
    ctx: WorkerContext
    score_task: Any
    verify_task: Any

    def depth(self) -> int:
        return int(self.huey.pending_count())


_lock = threading.Lock()
_current: Queue | None = None


# Five retries 3 s apart outlast ~1 min of lock contention (SQLite waits 10 s per try); after
# that the reaper's re-enqueue (LB_REQUEUE_SECONDS) is the safety net.
TASK_RETRIES = 5
TASK_RETRY_DELAY_S = 3


def make_huey(settings: Settings, *, immediate: bool = False) -> Huey:
    if settings.redis_url:
        return RedisHuey(QUEUE_NAME, url=settings.redis_url, immediate=immediate, results=False)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return SqliteHuey(QUEUE_NAME, filename=str((settings.data_dir / "queue.db").resolve()),
                      immediate=immediate, results=False)


def configure(settings: Settings, *, immediate: bool = False) -> Queue:
    """Build the queue for `settings` and make it the one `enqueue_*` use."""
    global _current
    huey = make_huey(settings, immediate=immediate)
    ctx = WorkerContext.create(settings)

    # A task that raises (a claim that met "database is locked", a DB connection cut before the
    # lease was taken) is dropped by Huey unless it retries; the claim makes retries harmless.
    @huey.task(name="score_submission", retries=TASK_RETRIES,  # type: ignore[untyped-decorator]
               retry_delay=TASK_RETRY_DELAY_S)
    def score_task(submission_id: int) -> str:
        return score_submission(ctx, submission_id)

    @huey.task(name="verify_submission", retries=TASK_RETRIES,  # type: ignore[untyped-decorator]
               retry_delay=TASK_RETRY_DELAY_S)
    def verify_task(verification_id: int) -> str:
        return verify(ctx, verification_id)

    def always(_dt: datetime) -> bool:
        return True

    # The consumer's scheduler decides how often this runs (`run_consumer` sets the period).
    @huey.periodic_task(always, name="reap_expired_leases")  # type: ignore[untyped-decorator]
    def reap_task() -> int:
        return reap_and_requeue(ctx)

    queue = Queue(huey=huey, ctx=ctx, score_task=score_task, verify_task=verify_task)
    with _lock:
        old, _current = _current, queue
    if old is not None and old.ctx.engine is not ctx.engine:
        old.ctx.engine.dispose()
    return queue


def ensure(settings: Settings) -> Queue:
    """The configured queue if it serves these settings, else one configured for them."""
    with _lock:
        queue = _current
    if queue is not None and queue.ctx.settings == settings:
        return queue
    return configure(settings)


def current() -> Queue:
    with _lock:
        queue = _current
    return queue if queue is not None else configure(Settings())


def reset() -> None:
    """Forget the configured queue (tests)."""
    global _current
    with _lock:
        old, _current = _current, None
    if old is not None:
        old.ctx.engine.dispose()


def reap_and_requeue(ctx: WorkerContext) -> int:
    ids = reap(ctx)
    for submission_id in ids:
        enqueue_scoring(submission_id)
    if ids:
        log.warning("re-queued submissions with expired leases: %s", ids)
    verification_ids = reap_verifications(ctx)
    for verification_id in verification_ids:
        enqueue_verification(verification_id)
    if verification_ids:
        log.warning("re-queued verifications with expired leases: %s", verification_ids)
    return len(ids) + len(verification_ids)


def enqueue_scoring(submission_id: int) -> None:
    """Ask a worker to score (or re-score under the installed scorer version) a submission."""
    current().score_task(submission_id)


def enqueue_verification(verification_id: int) -> None:
    current().verify_task(verification_id)


def make_consumer(queue: Queue, *, workers: int | None = None) -> Consumer:
    period = queue.ctx.settings.reaper_seconds

    class ReaperScheduler(Scheduler):  # type: ignore[misc]
        # Huey checks periodic tasks once a minute by default; the reaper wants its own period.
        periodic_task_seconds = period

    class LeaderboardConsumer(Consumer):  # type: ignore[misc]
        scheduler_class = ReaperScheduler

    return LeaderboardConsumer(
        queue.huey, workers=workers or queue.ctx.settings.consumer_workers,
        worker_type="thread", periodic=True, check_worker_health=True,
    )
