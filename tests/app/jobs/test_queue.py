"""The queue with real consumer processes: a worker SIGKILLed while it holds a lease, and
the queue on Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from app_factories import detached
from sqlalchemy import func, select

from app.jobs.context import JobContext
from app.jobs.queue import Queue
from app.models import Score, Submission

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def queue(settings: Any) -> Iterator[Queue]:
    """The workers' queue for the test's settings (not the immediate one)."""
    made = Queue(settings)
    yield made
    made.close()


@pytest.fixture
def ctx(queue: Queue) -> JobContext:
    LOGS.clear()
    return queue.context()


def start_worker(settings: Any, **env: str) -> subprocess.Popen[bytes]:
    environment = {
        **os.environ,
        "LB_DATA_DIR": str(settings.data_dir),
        "LB_DATABASE_URL": settings.db_url,
        "LB_LEASE_SECONDS": "5",
        "LB_HEARTBEAT_SECONDS": "0.5",
        "LB_REAPER_SECONDS": "1",
        "LB_AUTO_MIGRATE": "false",
        **env,
    }
    log = open(settings.data_dir / f"worker-{time.monotonic_ns()}.log", "wb")  # noqa: SIM115
    LOGS.append(Path(log.name))
    return subprocess.Popen([sys.executable, "-m", "app", "worker"], cwd=ROOT, env=environment,
                            stdout=log, stderr=subprocess.STDOUT)


LOGS: list[Path] = []


def worker_logs() -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in LOGS)


def wait_for(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n{worker_logs()}")
        time.sleep(0.1)


def submission(ctx: JobContext, sid: int) -> Submission:
    return detached(ctx, Submission, sid)


def insert(ctx: JobContext, team_id: int, sha: str) -> int:
    with ctx.factory() as session:
        sub = Submission(team_id=team_id, country="NL", method="m", state="queued",
                         file_sha256=sha, file_format="csv")
        session.add(sub)
        session.commit()
        return sub.id


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_worker_killed_mid_job_is_requeued_after_its_lease_and_scored_once(
        ctx: JobContext, queue: Queue, settings: Any, make_team: Any,
        make_predictions: Any) -> None:
    team, _ = make_team("alpha")
    body = make_predictions()[0]
    sha = ctx.store.put_bytes(body)
    path = ctx.store.path(sha)
    # The stored file becomes a FIFO: the first worker blocks opening it, lease held.
    path.unlink()
    os.mkfifo(path)
    sid = insert(ctx, team.id, sha)
    first = start_worker(settings)
    try:
        queue.enqueue("score", sid)
        wait_for(lambda: submission(ctx, sid).state == "running", 120, "the lease")
        first.send_signal(signal.SIGKILL)
        first.wait()
    finally:
        if first.poll() is None:
            first.kill()
    killed = submission(ctx, sid)
    assert (killed.state, killed.attempts) == ("running", 1), worker_logs()
    # Put the real file back (atomically) and let a fresh worker's reaper find the lease.
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(body)
    os.replace(tmp, path)
    second = start_worker(settings)
    try:
        wait_for(lambda: submission(ctx, sid).state == "scored", 120, "the second attempt")
    finally:
        stop(second)
    done = submission(ctx, sid)
    assert done.attempts == 2, worker_logs()
    with ctx.factory() as session:
        n = session.execute(select(func.count()).select_from(Score)
                            .where(Score.submission_id == sid)).scalar_one()
    assert n == 9


@pytest.mark.redis
def test_submission_is_scored_through_the_redis_queue(settings: Any, redis_url: str,
                                                      make_team: Any,
                                                      make_predictions: Any) -> None:
    on_redis = settings.model_copy(update={"redis_url": redis_url})
    configured = Queue(on_redis)
    configured.huey.flush()
    ctx = configured.context()
    team, _ = make_team("alpha")
    sid = insert(ctx, team.id, ctx.store.put_bytes(make_predictions()[0]))
    configured.enqueue("score", sid)
    assert configured.depth() == 1
    worker = start_worker(on_redis, LB_REDIS_URL=redis_url)
    try:
        wait_for(lambda: submission(ctx, sid).state == "scored", 120, "the Redis worker")
    finally:
        stop(worker)
        configured.huey.flush()
        configured.close()
    assert configured.depth() == 0


def test_consumer_checks_the_reaper_every_reaper_seconds(settings: Any) -> None:
    configured = Queue(settings.model_copy(update={"reaper_seconds": 7}))
    consumer = configured.consumer()
    assert consumer._create_scheduler().periodic_task_seconds == 7


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_claim_that_meets_a_locked_database_is_retried_not_dropped(
        settings: Any, ctx: JobContext, make_team: Any, make_predictions: Any) -> None:
    import sqlite3

    # The reaper's re-enqueue is pushed out of reach: only the task's own retry can score it.
    patient = settings.model_copy(update={"requeue_seconds": 3600})
    configured = Queue(patient)
    team, _ = make_team("alpha")
    sid = insert(ctx, team.id, ctx.store.put_bytes(make_predictions()[0]))
    configured.enqueue("score", sid)
    database = settings.db_url.removeprefix("sqlite:///")
    blocker = sqlite3.connect(database, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # holds the write lock past the 10 s busy timeout
    worker = start_worker(patient, LB_REQUEUE_SECONDS="3600")
    try:
        # The whole log: worker_logs() keeps only its tail, where the reaper's lines can push the
        # error out of sight.
        wait_for(lambda: any("database is locked" in log.read_text(errors="replace")
                             for log in LOGS), 60, "the claim to meet the lock")
        blocker.execute("ROLLBACK")
        wait_for(lambda: submission(ctx, sid).state == "scored", 60, "the retried claim")
    finally:
        blocker.close()
        stop(worker)
        configured.huey.flush()
    assert submission(ctx, sid).attempts == 1
    with ctx.factory() as session:
        assert session.scalar(
            select(func.count()).select_from(Score).where(Score.submission_id == sid)) == 9
