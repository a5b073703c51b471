"""Liveness after faults, on the real components: `serve` restarting a consumer killed with
SIGKILL, `/health` turning degraded with no consumer alive, SIGTERM that finishes the job in
hand or hands it back without spending an attempt, a Redis restarted empty or frozen, a lapsed
lease shown as "waiting for a worker", a full disk at scoring time, PostgreSQL stopped (503 with
Retry-After, the board from the cache) and the periodic sweep of orphaned temp files.

A job is held "in hand" by a real lock: the test takes PostgreSQL's lock on the `score` table,
so the worker has claimed the row and waits in its final write until the test lets go.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from fault_factories import (
    ThrowawayRedis,
    bearer,
    derive,
    free_port,
    insert_submission,
    job,
    missing,
    wait_for,
)
from sqlalchemy import Engine, text

from app.config import Settings
from app.db import make_engine, upgrade
from app.jobs.liveness import requeue_missing
from app.jobs.queue import Queue
from app.jobs.runner import retry_delay
from app.jobs.scoring import score_submission
from app.main import create_app
from app.models import Submission
from app.storage import ArtifactStore, is_full

ROOT = Path(__file__).resolve().parents[3]
POSTGRES_ONLY = pytest.mark.parametrize(
    "db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
# Fast liveness periods for the tests; each is a setting with a production default.
FAST = {"process_beat_seconds": 0.3, "process_stale_seconds": 3.0, "queue_check_seconds": 0.3,
        "queue_settle_seconds": 0.5, "reaper_seconds": 1, "retry_backoff_seconds": 0.2}


# ------------------------------------------------------------------------------------ helpers


def quick(settings: Settings, **changes: Any) -> Settings:
    """`settings` with the fast liveness periods, and `changes` over them."""
    return derive(settings, **{**FAST, **changes})


def post_upload(client: Any, token: str, body: bytes) -> Any:
    return client.post("/api/v1/submissions", headers=bearer(token),
                       files={"file": ("predictions.csv", body, "text/csv")},
                       data={"country": "NL", "method": "mine"})


def submit(settings: Settings, engine: Engine, team_id: int, body: bytes) -> int:
    """A queued submission, enqueued as an upload enqueues it."""
    sid = insert_submission(settings, engine, team_id, body)
    queue = Queue(settings)
    try:
        queue.enqueue("score", sid)
    finally:
        queue.close()
    return sid


def service_env(settings: Settings, **extra: Any) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LB_")}
    values = {**settings.model_dump(), **extra}
    for name in ("data_dir", "lease_seconds", "heartbeat_seconds", "reaper_seconds",
                 "requeue_seconds", "max_attempts", "daily_quota", "process_beat_seconds",
                 "process_stale_seconds", "queue_check_seconds", "queue_settle_seconds",
                 "stop_grace_seconds", "retry_backoff_seconds", "no_space_retry_seconds",
                 "min_free_bytes", "max_upload_bytes"):
        env[f"LB_{name.upper()}"] = str(values[name])
    env["LB_DATABASE_URL"] = settings.db_url
    env["LB_ARTIFACT_DIR"] = str(settings.artifacts)
    env["LB_AUTO_MIGRATE"] = "false"
    if values.get("redis_url"):
        env["LB_REDIS_URL"] = str(values["redis_url"])
    return env


class Process:
    """`python -m app ARGS` in its own process, its output in a log file."""

    def __init__(self, env: dict[str, str], log_dir: Path, *args: str) -> None:
        self.log = log_dir / f"{args[0]}-{time.monotonic_ns()}.log"
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen([sys.executable, "-m", "app", *args], cwd=ROOT,
                                            env=env, stdout=out, stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-6000:]

    def signal(self, sig: int) -> None:
        self.process.send_signal(sig)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextmanager
def running(env: dict[str, str], log_dir: Path, *args: str) -> Iterator[Process]:
    process = Process(env, log_dir, *args)
    try:
        yield process
    finally:
        process.stop()


def children(pid: int) -> list[int]:
    """Child processes of `pid`, whichever of its threads started them (the supervisor's
    thread starts a restarted consumer)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except FileNotFoundError:
            continue
    return found


@contextmanager
def score_table_locked(engine: Engine) -> Iterator[Callable[[], None]]:
    """Hold PostgreSQL's lock on `score`: a worker that claimed a job waits in its final write
    (a job in hand, for as long as the test wants). Yields the function that lets go."""
    conn = engine.connect()
    tx = conn.begin()
    conn.execute(text("LOCK TABLE score IN EXCLUSIVE MODE"))
    released = threading.Event()

    def release() -> None:
        if not released.is_set():
            released.set()
            tx.rollback()
            conn.close()

    try:
        yield release
    finally:
        release()


def waiting_on_score_lock(engine: Engine) -> bool:
    with engine.connect() as conn:
        return bool(conn.execute(text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND query ILIKE '%INSERT INTO score%'")).scalar_one())


# -------------------------------------------------- 1. serve supervises, /health sees consumers


@POSTGRES_ONLY
@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_serve_restarts_its_killed_consumer_and_the_next_upload_is_scored(
        settings: Settings, make_team: Any, make_predictions: Any, tmp_path: Path) -> None:
    fast = quick(settings)
    port = free_port()
    _, token = make_team("alpha")
    engine = make_engine(fast)
    with running(service_env(fast), tmp_path, "serve", "--port", str(port)) as serve:
        url = f"http://127.0.0.1:{port}"

        def health() -> dict[str, Any]:
            try:
                return dict(httpx.get(f"{url}/health", timeout=5).json())
            except httpx.HTTPError:
                return {}

        wait_for(lambda: health().get("consumers_alive") == 1, 90, "serve's consumer",
                 serve.output)
        first = children(serve.process.pid)
        assert len(first) == 1, first
        os.kill(first[0], signal.SIGKILL)
        wait_for(lambda: [c for c in children(serve.process.pid) if c != first[0]] != [], 60,
                 "a new consumer", serve.output)
        wait_for(lambda: health().get("status") == "ok" and health().get(
            "consumers_alive") == 1, 60, "the new consumer's heartbeat", serve.output)
        with httpx.Client(base_url=url, timeout=30) as client:
            sid = post_upload(client, token, make_predictions()[0]).json()["id"]
        wait_for(lambda: job(engine, sid)[0] == "scored", 120, "scoring", serve.output)
        assert "restart 1" in serve.output()
    engine.dispose()


@POSTGRES_ONLY
def test_health_is_degraded_while_no_consumer_is_alive(settings: Settings,
                                                        tmp_path: Path) -> None:
    fast = quick(settings)
    queue = Queue(fast)
    try:
        with TestClient(create_app(fast, queue)) as client:
            assert client.get("/health").json()["problems"] == [
                "no queue consumer is alive: nothing scores submissions"]
            worker = Process(service_env(fast), tmp_path, "worker")
            try:
                wait_for(lambda: client.get("/health").json()["consumers_alive"] == 1, 90,
                         "the worker's heartbeat", worker.output)
                body = client.get("/health").json()
                assert body["status"] == "ok"
                assert body["consumers"][0]["alive"] is True
                worker.signal(signal.SIGKILL)
                worker.process.wait()
                wait_for(lambda: client.get("/health").json()["status"] == "degraded", 30,
                         "health to notice the dead worker")
                response = client.get("/health")
                # Degraded but serving: 200, so a load balancer keeps sending uploads.
                assert response.status_code == 200
                assert response.json()["consumers_alive"] == 0
                assert response.json()["consumers"][0]["age_s"] >= fast.process_stale_seconds
            finally:
                worker.stop()
    finally:
        queue.close()


# ----------------------------------------------------------------- 2. SIGTERM is graceful


@POSTGRES_ONLY
def test_sigterm_lets_the_job_in_hand_finish_within_the_grace_period(
        settings: Settings, make_team: Any, make_predictions: Any, tmp_path: Path) -> None:
    fast = quick(settings, stop_grace_seconds=60)
    team, _ = make_team("alpha")
    engine = make_engine(fast)
    sid = submit(fast, engine, team.id, make_predictions()[0])
    with score_table_locked(engine) as release, \
            running(service_env(fast), tmp_path, "worker") as service:
        wait_for(lambda: waiting_on_score_lock(engine), 120, "the job in hand",
                 service.output)
        assert job(engine, sid) == ("running", 1, 0)
        service.signal(signal.SIGTERM)
        time.sleep(0.5)  # the signal lands while the job is still in hand (not a timing test)
        release()
        service.process.wait(timeout=90)
    # Finished by the stopping process, with its one attempt: nothing lost, nothing spent.
    assert job(engine, sid) == ("scored", 1, 9), service.output()
    engine.dispose()


@POSTGRES_ONLY
@pytest.mark.parametrize("command", ["worker", "serve"])
def test_sigterm_past_the_grace_period_hands_the_job_back_without_an_attempt(
        settings: Settings, make_team: Any, make_predictions: Any, tmp_path: Path,
        command: str) -> None:
    """`worker` SIGTERMed, or `serve` SIGTERMed (it stops its consumer by the same rule), while
    the job in hand cannot finish: back to the queue within the grace period."""
    fast = quick(settings, stop_grace_seconds=0.5, max_attempts=1)
    team, _ = make_team("alpha")
    engine = make_engine(fast)
    sid = submit(fast, engine, team.id, make_predictions()[0])
    args = ["serve", "--port", str(free_port())] if command == "serve" else ["worker"]
    with score_table_locked(engine) as release:
        worker = Process(service_env(fast), tmp_path, *args)
        try:
            wait_for(lambda: waiting_on_score_lock(engine), 120, "the job in hand",
                     worker.output)
            worker.signal(signal.SIGTERM)
            code = worker.process.wait(timeout=60)
            # serve ends by the SIGTERM it re-raises after uvicorn's shutdown (128 + 15).
            assert code == (0 if command == "worker" else 128 + signal.SIGTERM), \
                worker.output()
            # Back at once, its attempt given back: with one attempt allowed, it would
            # otherwise be lost to the deploy.
            assert job(engine, sid) == ("queued", 0, 0), worker.output()
        finally:
            worker.stop()
        release()
    with running(service_env(fast), tmp_path, "worker") as second:
        wait_for(lambda: job(engine, sid)[0] == "scored", 120, "the next worker",
                 second.output)
    assert job(engine, sid) == ("scored", 1, 9)
    engine.dispose()


# ------------------------------------------------------- 3. Redis restarted empty or frozen


@POSTGRES_ONLY
@pytest.mark.redis
def test_rows_missing_from_a_redis_restarted_empty_are_enqueued_in_seconds_once(
        settings: Settings, own_redis: ThrowawayRedis, make_team: Any,
        make_predictions: Any, tmp_path: Path) -> None:
    # The re-enqueue of old (LB_REQUEUE_SECONDS) stays at its default of ten minutes: only the
    # queue check can meet the deadlines below.
    fast = quick(settings, redis_url=own_redis.url, daily_quota=10)
    assert fast.requeue_seconds == 600
    queue = Queue(fast)
    engine = make_engine(fast)
    _, token = make_team("alpha")
    try:
        with TestClient(create_app(fast, queue)) as client:
            ids = [post_upload(client, token, make_predictions(seed=s)[0]).json()["id"]
                   for s in (1, 2, 3)]
            assert queue.depth() == 3
            own_redis.kill()
            own_redis.start()  # empty: no persistence
            health = client.get("/health").json()
            # The database's count beside the queue's: the truth /health used to hide.
            assert (health["queue_depth"], health["jobs"]["queued"]) == (0, 3)
            with running(service_env(fast), tmp_path, "worker") as worker:
                wait_for(lambda: all(job(engine, sid)[0] == "scored" for sid in ids), 60,
                         "the queue check to enqueue them again", worker.output)
                wait_for(lambda: queue.depth() == 0, 30, "the queue to drain")
                assert worker.process.poll() is None, worker.output()
            assert [job(engine, sid) for sid in ids] == [("scored", 1, 9)] * 3
    finally:
        queue.close()
        engine.dispose()


@POSTGRES_ONLY
@pytest.mark.redis
def test_the_queue_check_enqueues_a_missing_row_once_not_on_every_pass(
        settings: Settings, own_redis: ThrowawayRedis, make_team: Any,
        make_predictions: Any) -> None:
    fast = quick(settings, redis_url=own_redis.url, queue_settle_seconds=0)
    queue = Queue(fast)
    ctx = queue.context()
    team, _ = make_team("alpha")
    sid = insert_submission(fast, ctx.engine, team.id, make_predictions()[0])
    try:
        assert requeue_missing(ctx, queue.held_ids()) == {"score": [sid]}
        # In the queue now: every later pass leaves it alone, however many run.
        for _ in range(3):
            assert requeue_missing(ctx, queue.held_ids()) == {}
        assert queue.held_ids()["score"] == {sid} and queue.depth() == 1
        own_redis.kill()
        own_redis.start()
        assert requeue_missing(ctx, queue.held_ids()) == {"score": [sid]}
        assert queue.depth() == 1
    finally:
        queue.close()


@POSTGRES_ONLY
@pytest.mark.redis
def test_an_upload_during_a_redis_freeze_is_accepted_at_once_and_scored_after(
        settings: Settings, own_redis: ThrowawayRedis, make_team: Any,
        make_predictions: Any, tmp_path: Path) -> None:
    fast = quick(settings, redis_url=own_redis.url, enqueue_timeout_seconds=0.5)
    queue = Queue(fast)
    engine = make_engine(fast)
    _, token = make_team("alpha")
    assert own_redis.process is not None
    try:
        with TestClient(create_app(fast, queue)) as client:
            own_redis.process.send_signal(signal.SIGSTOP)  # connected, never answering
            try:
                done: list[Any] = []
                thread = threading.Thread(target=lambda: done.append(
                    post_upload(client, token, make_predictions()[0])), daemon=True)
                thread.start()
                thread.join(timeout=60)  # a socket without a timeout waits for ever
                assert done, "the upload hung on the frozen Redis"
                assert done[0].status_code == 202, done[0].text
            finally:
                own_redis.process.send_signal(signal.SIGCONT)
            sid = done[0].json()["id"]
            with running(service_env(fast), tmp_path, "worker") as worker:
                wait_for(lambda: job(engine, sid)[0] == "scored", 60, "scoring",
                         worker.output)
            assert job(engine, sid) == ("scored", 1, 9)
    finally:
        queue.close()
        engine.dispose()


# ---------------------------------------------- 4. a lapsed lease: "waiting for a worker"


def test_default_lease_is_about_a_minute_renewed_several_times_inside_it() -> None:
    defaults = Settings()
    assert 45 <= defaults.lease_seconds <= 90
    assert defaults.lease_seconds / defaults.heartbeat_period >= 3


@POSTGRES_ONLY
def test_a_job_whose_worker_died_shows_waiting_for_a_worker(
        settings: Settings, make_team: Any, make_predictions: Any, tmp_path: Path) -> None:
    # A long reaper period: the lapsed lease stays visible as such.
    fast = quick(settings, lease_seconds=2, heartbeat_seconds=0.5, reaper_seconds=600)
    team, token = make_team("alpha")
    engine = make_engine(fast)
    sid = submit(fast, engine, team.id, make_predictions()[0])
    with score_table_locked(engine):
        worker = Process(service_env(fast), tmp_path, "worker")
        try:
            wait_for(lambda: waiting_on_score_lock(engine), 120, "the job in hand",
                     worker.output)
            worker.signal(signal.SIGKILL)
            worker.process.wait()
        finally:
            worker.stop()
    queue = Queue(fast)
    try:
        with TestClient(create_app(fast, queue)) as client:
            def shown() -> dict[str, Any]:
                return dict(client.get(f"/api/v1/submissions/{sid}",
                                       headers=bearer(token)).json())

            assert shown()["state"] == "running"
            wait_for(lambda: shown()["waiting_since"] is not None, 30, "the lease to lapse")
            assert client.get("/health").json()["jobs"]["lapsed"] == 1
            _, organiser = make_team("organisers", organiser=True)
            client.post("/organiser/login", data={"token": organiser})
            page = client.get(f"/submissions/{sid}")
            assert page.status_code == 200, page.text
            assert "waiting for a worker since" in page.text
    finally:
        queue.close()
        engine.dispose()


# ------------------------------------------------------------- 5. backoff; a full disk waits


def test_a_retried_job_waits_longer_after_each_attempt(settings: Settings, make_team: Any,
                                                       make_predictions: Any) -> None:
    """An unexpected error (the stored file vanished) puts the job back into the queue's
    schedule, not straight back into the queue: retries back off."""
    queue = Queue(derive(settings, retry_backoff_seconds=30))  # SqliteHuey, not immediate
    ctx = queue.context()
    team, _ = make_team("alpha")
    sid = insert_submission(ctx.settings, ctx.engine, team.id, make_predictions()[0])
    try:
        with ctx.factory() as session:
            sub = session.get(Submission, sid)
            assert sub is not None and sub.file_sha256
            ctx.store.path(sub.file_sha256).unlink()
        before = time.time()
        assert score_submission(ctx, sid) == "retry"
        assert job(ctx.engine, sid) == ("queued", 1, 0)
        # Huey enqueues a delayed task with its eta; the consumer holds it until then.
        [delayed] = queue.huey.pending()
        assert delayed.args == (sid,)
        assert delayed.eta.replace(tzinfo=UTC).timestamp() >= before + 29
        assert [retry_delay(ctx, n) for n in (1, 2, 3)] == [30.0, 60.0, 120.0]
    finally:
        queue.huey.flush()
        queue.close()


@POSTGRES_ONLY
def test_a_full_disk_at_scoring_time_waits_without_spending_attempts(
        settings: Settings, tiny_store: Path, make_team: Any, make_predictions: Any,
        tmp_path: Path) -> None:
    fast = quick(settings, artifact_dir=tiny_store, max_attempts=1,
                  no_space_retry_seconds=0.3, min_free_bytes=64 << 10)
    team, _ = make_team("alpha")
    engine = make_engine(fast)
    sid = submit(fast, engine, team.id, make_predictions()[0])
    filler = tiny_store / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)  # every byte left: no room for the .npz
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError as exc:
        assert is_full(exc)
    finally:
        os.close(fd)
    queue = Queue(fast)
    try:
        with TestClient(create_app(fast, queue)) as client, \
                running(service_env(fast), tmp_path, "worker") as worker:
            wait_for(lambda: "full disk" in worker.output(), 120, "the job to meet the full "
                     "disk", worker.output)
            wait_for(lambda: "full disk" in worker.output().split("full disk", 1)[1], 60,
                     "a second try", worker.output)
            # One attempt allowed, tried at least twice: none was spent, nothing failed.
            assert job(engine, sid)[0] in ("queued", "running")
            assert job(engine, sid)[1] <= 1
            health = client.get("/health").json()
            assert health["status"] == "degraded" and health["disk"]["ok"] is False
            filler.unlink()
            wait_for(lambda: job(engine, sid)[0] == "scored", 60, "scoring once there is room",
                     worker.output)
            assert client.get("/health").json()["disk"]["ok"] is True
        assert job(engine, sid) == ("scored", 1, 9)
    finally:
        queue.close()
        engine.dispose()


# ------------------------------------------------------------ 6. PostgreSQL stopped for real


class PrivatePostgres:
    """A PostgreSQL cluster of this test's own (initdb + pg_ctl on a free port), so stopping
    it touches nobody else's database. Run as the `postgres` user when we are root."""

    def __init__(self) -> None:
        initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
        if initdb is None or pg_ctl is None:
            missing("initdb/pg_ctl")
        self.pg_ctl = str(pg_ctl)
        self.dir = Path(tempfile.mkdtemp(prefix="lb-pg-"))
        self.port = free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self._run(str(initdb), "-D", str(self.dir / "data"), "-U", "postgres", "-A", "trust")

    def _run(self, *args: str) -> None:
        subprocess.run([*self.as_user, *args], check=True, capture_output=True)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        self._run(self.pg_ctl, "-D", str(self.dir / "data"), "-w", "-l",
                  str(self.dir / "log"), "-o", f"-p {self.port} -k {self.dir} -h 127.0.0.1",
                  "start")

    def stop(self) -> None:
        self._run(self.pg_ctl, "-D", str(self.dir / "data"), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        subprocess.run([*self.as_user, self.pg_ctl, "-D", str(self.dir / "data"), "-m",
                        "immediate", "stop"], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    server.start()
    yield server
    server.remove()


@pytest.mark.postgres
def test_a_database_outage_is_a_503_with_retry_after_and_the_board_comes_from_the_cache(
        data_dir: Path, private_postgres: PrivatePostgres, make_predictions: Any) -> None:
    upgrade(private_postgres.url)
    fast = Settings(data_dir=data_dir, database_url=private_postgres.url,
                    leaderboard_check_seconds=0, db_retry_after_seconds=7)
    queue = Queue(fast, immediate=True)
    try:
        with TestClient(create_app(fast, queue)) as client:
            from app.db import session_factory
            from app.teams.service import create_team

            engine = make_engine(fast)
            with session_factory(engine)() as session:
                _, issued = create_team(session, None, "alpha")
                session.commit()
            engine.dispose()
            token = issued.secret
            assert post_upload(client, token, make_predictions()[0]).status_code == 202
            board = client.get("/api/v1/leaderboard")
            page = client.get("/")
            assert "X-Leaderboard-Stale" not in board.headers
            private_postgres.stop()

            me = client.get("/api/v1/me", headers=bearer(token))
            assert me.status_code == 503, me.text
            assert me.json()["error"] == "database_unavailable"
            assert me.headers["Retry-After"] == "7"
            refused = post_upload(client, token, make_predictions(seed=2)[0])
            assert (refused.status_code, refused.json()["error"]) == (
                503, "database_unavailable")

            stale = client.get("/api/v1/leaderboard")
            assert stale.status_code == 200
            assert stale.json() == board.json()
            assert "possibly stale" in stale.headers["X-Leaderboard-Stale"]
            stale_page = client.get("/")
            assert stale_page.status_code == 200
            assert "may be out of date" in stale_page.text and "alpha" in stale_page.text
            assert "may be out of date" not in page.text
            assert client.get("/health").status_code == 503

            private_postgres.start()
            wait_for(lambda: client.get("/api/v1/me", headers=bearer(token)).status_code
                     == 200, 60, "the database back")
            fresh = client.get("/api/v1/leaderboard")
            assert "X-Leaderboard-Stale" not in fresh.headers
    finally:
        queue.close()


# ------------------------------------------------------- 7. orphaned temp files, periodically


def test_the_api_sweeps_orphaned_temp_files_while_it_runs_not_a_live_uploads(
        settings: Settings, make_team: Any, make_predictions: Any) -> None:
    import uvicorn

    fast = derive(settings, tmp_sweep_seconds=0.2, tmp_sweep_min_age_seconds=1)
    store = ArtifactStore.of(fast)
    # Left by an upload whose process died: an hour old, far from the start-up sweep's day.
    orphan = store.tmp_dir / "upload-file-crashed"
    orphan.write_bytes(b"x" * 4096)
    os.utime(orphan, (time.time() - 3600, time.time() - 3600))
    _, token = make_team("alpha")
    port = free_port()
    queue = Queue(fast, immediate=True)
    server = uvicorn.Server(uvicorn.Config(create_app(fast, queue), host="127.0.0.1",
                                           port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    body = make_predictions()[0]
    boundary = "liveness-boundary"
    multipart = b"".join([
        *(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
          .encode() for name, value in (("country", "NL"), ("method", "mine"))),
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="p.csv"\r\n'
        "Content-Type: text/csv\r\n\r\n".encode(), body, f"\r\n--{boundary}--\r\n".encode()])
    go_on = threading.Event()

    def chunks() -> Iterator[bytes]:
        yield multipart[:len(multipart) // 2]
        go_on.wait(120)  # a slow client: its temp file lives, owned, while it waits
        yield multipart[len(multipart) // 2:]

    answers: list[Any] = []

    def send() -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as http:
            answers.append(http.post(
                "/api/v1/submissions", content=chunks(),
                headers={**bearer(token),
                         "Content-Type": f"multipart/form-data; boundary={boundary}"}))

    try:
        wait_for(lambda: server.started, 30, "uvicorn")
        sender = threading.Thread(target=send, daemon=True)
        sender.start()

        def live_files() -> list[Path]:
            return [p for p in store.tmp_dir.iterdir() if p != orphan]

        wait_for(lambda: live_files() != [], 60, "the upload's temp file")
        [live] = live_files()
        os.utime(live, (time.time() - 3600, time.time() - 3600))  # old, but owned
        wait_for(lambda: not orphan.exists(), 30, "the periodic sweep")
        time.sleep(0.5)  # more sweeps pass (not a timing assertion: the file must survive all)
        assert live.exists()
        go_on.set()
        sender.join(timeout=120)
        assert answers and answers[0].status_code == 202, answers
        assert list(store.tmp_dir.iterdir()) == []
    finally:
        go_on.set()
        server.should_exit = True
        thread.join(timeout=10)
        queue.close()
