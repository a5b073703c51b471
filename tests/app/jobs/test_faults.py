"""Faults against the real components: Redis stopped while uploads arrive (and the reaper that
enqueues a lost job again), the database cut off while a worker writes its scores, a full
artifact store, and one upload sent twice at once with one Idempotency-Key. (A worker SIGKILLed
mid-job: tests/app/test_queue.py.)

Every fault test ends with exact counts: one submission, one quota unit, exactly nine score rows,
the number of attempts each job took.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from fault_factories import (
    ThrowawayRedis,
    bearer,
    derive,
    insert_submission,
    job,
    wait_for,
)
from sqlalchemy import Engine, text, update
from sqlalchemy.engine import make_url

from app.config import Settings
from app.db import make_engine, session_factory
from app.jobs import lease
from app.jobs.context import JobContext
from app.jobs.queue import Queue
from app.jobs.scoring import score_submission
from app.main import create_app
from app.models import Submission, Verification
from app.storage import ArtifactStore, is_full
from app.submissions import service
from app.submissions.upload import Upload, UploadedFile
from evaluator.scoring import SCORER_VERSION

ROOT = Path(__file__).resolve().parents[3]
POSTGRES_ONLY = pytest.mark.parametrize(
    "db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)


# ------------------------------------------------------------------------------------ helpers


def upload(client: Any, token: str, body: bytes, key: str | None = None) -> Any:
    headers = {**bearer(token), **({"Idempotency-Key": key} if key else {})}
    return client.post("/api/v1/submissions", headers=headers,
                       files={"file": ("predictions.csv", body, "text/csv")},
                       data={"country": "NL", "method": "mine"})


def count(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


class Worker:
    """`python -m app worker` in its own process, configured from `settings`."""

    def __init__(self, settings: Settings, log_dir: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LB_")}
        env.update({
            "LB_DATA_DIR": str(settings.data_dir), "LB_DATABASE_URL": settings.db_url,
            "LB_ARTIFACT_DIR": str(settings.artifacts),
            "LB_LEASE_SECONDS": str(settings.lease_seconds),
            "LB_HEARTBEAT_SECONDS": str(settings.heartbeat_seconds),
            "LB_REAPER_SECONDS": str(settings.reaper_seconds),
            "LB_REQUEUE_SECONDS": str(settings.requeue_seconds),
            "LB_MAX_ATTEMPTS": str(settings.max_attempts), "LB_AUTO_MIGRATE": "false",
        })
        if settings.redis_url:
            env["LB_REDIS_URL"] = settings.redis_url
        self.log = log_dir / f"worker-{time.monotonic_ns()}.log"
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen([sys.executable, "-m", "app", "worker"], cwd=ROOT,
                                            env=env, stdout=out, stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        """SIGINT: Huey finishes the job in hand, then exits."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextmanager
def running_worker(settings: Settings, log_dir: Path) -> Iterator[Worker]:
    worker = Worker(settings, log_dir)
    try:
        yield worker
    finally:
        worker.stop()


# ------------------------------------------------------------------------ Redis stopped


@POSTGRES_ONLY
@pytest.mark.redis
def test_uploads_while_redis_is_down_are_accepted_and_scored_once_when_it_is_back(
        settings: Settings, own_redis: ThrowawayRedis, make_team: Any, make_predictions: Any,
        tmp_path: Path) -> None:
    on_redis = derive(settings, redis_url=own_redis.url, daily_quota=10, lease_seconds=5,
                      heartbeat_seconds=0.5, reaper_seconds=1, requeue_seconds=2)
    queue = Queue(on_redis)
    engine = make_engine(on_redis)
    _, token = make_team("alpha")
    try:
        with TestClient(create_app(on_redis, queue)) as client, \
                running_worker(on_redis, tmp_path) as worker:
            before = upload(client, token, make_predictions(seed=0)[0])
            assert before.status_code == 202, before.text
            first = before.json()["id"]
            wait_for(lambda: job(engine, first)[0] == "scored", 120, "scoring via Redis",
                     worker.output)

            own_redis.kill()
            during = [upload(client, token, make_predictions(seed=seed)[0])
                      for seed in (1, 2, 3)]
            assert [r.status_code for r in during] == [202, 202, 202], [r.text for r in during]
            ids = [r.json()["id"] for r in during]
            assert [job(engine, sid) for sid in ids] == [("queued", 0, 0)] * 3

            # Back empty (no persistence): only the reaper can know about these three.
            own_redis.start()
            wait_for(lambda: all(job(engine, sid)[0] == "scored" for sid in ids), 60,
                     "the reaper to enqueue the uploads again", worker.output)
            # A second delivery of each job on top of the reaper's must change nothing.
            for sid in [first, *ids]:
                queue.enqueue("score", sid)
            wait_for(lambda: queue.depth() == 0, 60, "the queue to drain", worker.output)
            assert worker.process.poll() is None, worker.output()
        # The worker has stopped (after finishing the job in hand): every count is final.
        assert [job(engine, sid) for sid in [first, *ids]] == [("scored", 1, 9)] * 4, \
            worker.output()
        assert count(engine, "submission") == 4
        with TestClient(create_app(on_redis, queue)) as client:
            assert client.get("/api/v1/me", headers=bearer(token)).json()["quota"]["used"] == 4
    finally:
        queue.close()
        engine.dispose()


def backdate(engine: Engine, model: type[Submission] | type[Verification], row_id: int,
             column: str, seconds: float) -> None:
    """Set a timestamp `seconds` in the past, through the column's type (SQLite compares
    text: one format for every value)."""
    with engine.begin() as conn:
        conn.execute(update(model).where(model.id == row_id)
                     .values({column: datetime.now(UTC) - timedelta(seconds=seconds)}))


def test_reaper_enqueues_a_job_whose_enqueue_was_lost_again_once_per_period(
        settings: Settings, make_team: Any, make_predictions: Any) -> None:
    enqueued: list[tuple[str, int]] = []
    ctx = JobContext.create(derive(settings, requeue_seconds=60),
                            lambda kind, row_id: enqueued.append((kind, row_id)))

    def reap(ctx: JobContext) -> list[int]:
        return lease.reap(ctx, Submission)

    def reap_verifications(ctx: JobContext) -> list[int]:
        return lease.reap(ctx, Verification)

    team, _ = make_team("alpha")
    body = make_predictions()[0]
    fresh = insert_submission(ctx.settings, ctx.engine, team.id, body)
    lost = insert_submission(ctx.settings, ctx.engine, team.id, body)
    backdate(ctx.engine, Submission, lost, "created_at", 61)
    with ctx.factory() as session:
        ver = Verification(submission_id=fresh, state="queued", tolerance=1e-4)
        session.add(ver)
        session.commit()
        vid = ver.id
    backdate(ctx.engine, Verification, vid, "created_at", 61)
    try:
        assert reap(ctx) == [lost]
        assert reap_verifications(ctx) == [vid]
        # Not on every pass: a job waiting behind a long queue is not piled up in it.
        assert (reap(ctx), reap_verifications(ctx)) == ([], [])
        backdate(ctx.engine, Submission, lost, "lease_expires_at", 1)
        assert reap(ctx) == [lost]
        assert score_submission(ctx, lost) == "scored"
        assert reap(ctx) == []
        assert job(ctx.engine, lost) == ("scored", 1, 9)
        assert job(ctx.engine, fresh) == ("queued", 0, 0)
    finally:
        ctx.engine.dispose()


# --------------------------------------------------------------- database cut off mid-write


class CuttingProxy:
    """A TCP proxy to PostgreSQL. The first time a client sends `trigger`, it forwards that
    packet, then drops every connection and turns new ones away for `blackout` seconds: a
    database restart landing between a statement and its COMMIT."""

    def __init__(self, upstream: tuple[str, int], trigger: bytes, blackout: float) -> None:
        self.upstream = upstream
        self.trigger = trigger
        self.blackout = blackout
        self.fired = threading.Event()
        self.cuts = 0
        self.refused = 0
        self._refuse_until = 0.0
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if time.monotonic() < self._refuse_until:
                self.refused += 1
                client.close()
                continue
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets |= {client, server}
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False),
                             daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, inspect: bool) -> None:
        tail = b""
        try:
            while data := source.recv(65536):
                sink.sendall(data)
                if inspect and not self.fired.is_set():
                    # The pattern may straddle two reads.
                    if self.trigger in tail + data:
                        self._cut()
                        return
                    tail = data[-len(self.trigger):]
        except OSError:
            pass
        finally:
            self._drop(source, sink)

    def _drop(self, *sockets: socket.socket) -> None:
        for sock in sockets:
            with self._lock:
                self._sockets.discard(sock)
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _cut(self) -> None:
        with self._lock:
            self._refuse_until = time.monotonic() + self.blackout
            self.cuts += 1
            victims = list(self._sockets)
        self.fired.set()
        self._drop(*victims)

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        with self._lock:
            victims = list(self._sockets)
        self._drop(*victims)


@POSTGRES_ONLY
@pytest.mark.parametrize(("blackout", "lease_seconds"), [
    # Down for a while: the worker cannot even put the job back; its lease runs out and the
    # reaper retries it.
    pytest.param(1.0, 3, id="reaper-retries"),
    # Back at once: the worker puts the job back itself, long before its lease could expire.
    pytest.param(0.0, 600, id="worker-retries"),
])
def test_database_cut_off_while_scores_are_written_leaves_no_partial_rows_and_retries(
        settings: Settings, make_team: Any, make_predictions: Any, tmp_path: Path,
        blackout: float, lease_seconds: int) -> None:
    direct = make_url(settings.db_url)
    proxy = CuttingProxy((direct.host or "127.0.0.1", direct.port or 5432),
                         trigger=b"INSERT INTO score", blackout=blackout)
    via_proxy = derive(settings, lease_seconds=lease_seconds, heartbeat_seconds=0.5,
                       reaper_seconds=1,
                       database_url=direct.set(host="127.0.0.1", port=proxy.port)
                       .render_as_string(hide_password=False))
    engine = make_engine(settings)
    team, _ = make_team("alpha")
    sid = insert_submission(settings, engine, team.id, make_predictions()[0])
    seen: list[tuple[str, int, int]] = []
    stop = threading.Event()

    def sample() -> None:
        # Everything a reader of the database could see, start to end.
        while not stop.is_set():
            seen.append(job(engine, sid))
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    producer = Queue(settings)
    try:
        with running_worker(via_proxy, tmp_path) as worker:
            producer.enqueue("score", sid)
            assert proxy.fired.wait(120), f"the worker never wrote scores\n{worker.output()}"
            if blackout:
                # The UPDATE to `scored` and the INSERT of the scores reached the server; the
                # COMMIT never will. Within the blackout no retry can have committed yet.
                state, attempts, scores = job(engine, sid)
                assert (state, attempts, scores) == ("running", 1, 0), worker.output()
            wait_for(lambda: job(engine, sid)[0] == "scored", 60, "the retry", worker.output)
            assert worker.process.poll() is None, worker.output()
    finally:
        stop.set()
        sampler.join()
        proxy.close()
        producer.close()
    assert job(engine, sid) == ("scored", 2, 9)
    assert proxy.cuts == 1
    with engine.connect() as conn:
        keys = conn.execute(text("SELECT split, task, scorer_version FROM score "
                                 "WHERE submission_id = :id"), {"id": sid}).all()
    assert len(set(keys)) == len(keys) == 9
    assert {k[2] for k in keys} == {SCORER_VERSION}
    partial = [s for s in seen if s[2] not in (0, 9) or (s[0] == "scored") != (s[2] == 9)]
    assert seen and partial == []
    engine.dispose()


# --------------------------------------------------------------------- artifact store full


def test_upload_bigger_than_the_free_space_is_507_leaving_nothing(
        settings: Settings, make_team: Any, make_predictions: Any, tiny_store: Path) -> None:
    small = derive(settings, artifact_dir=tiny_store)
    store = ArtifactStore.of(small)
    queue = Queue(small, immediate=True)
    engine = make_engine(small)
    _, token = make_team("alpha")
    try:
        with TestClient(create_app(small, queue)) as client:
            used_before = shutil.disk_usage(store.tmp_dir).used
            free = shutil.disk_usage(tiny_store).free
            line = b"0,0.5,0.5\n"
            big = b"row_id,ctr,cvr\n" + line * (free // len(line) + 1000)
            assert free < len(big) < small.max_upload_bytes
            response = upload(client, token, big)
            assert response.status_code == 507, response.text
            assert response.json()["error"] == "storage_full"
            assert "artifact store is full" in response.json()["detail"]
            assert [p for p in tiny_store.rglob("*") if not p.is_dir()] == []
            assert shutil.disk_usage(tiny_store).used == used_before
            assert count(engine, "submission") == 0
            me = client.get("/api/v1/me", headers=bearer(token)).json()
            assert me["quota"]["used"] == 0
            # The service keeps serving, from the same store.
            fits = upload(client, token, make_predictions()[0])
            assert fits.status_code == 202, fits.text
            assert job(engine, fits.json()["id"]) == ("scored", 1, 9)
            me = client.get("/api/v1/me", headers=bearer(token)).json()
            assert me["quota"]["used"] == 1
    finally:
        queue.close()
        engine.dispose()


# ------------------------------------------------------------- one upload, sent twice at once


def test_twin_uploads_with_one_idempotency_key_make_one_submission_and_one_quota_unit(
        live_server: tuple[str, int], settings: Settings, make_team: Any,
        make_predictions: Any) -> None:
    host, port = live_server
    _, token = make_team("alpha")
    body = make_predictions()[0]
    boundary = "twin-boundary"
    multipart = b"".join([
        *(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
          .encode() for name, value in (("country", "NL"), ("method", "mine"))),
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="p.csv"\r\n'
        "Content-Type: text/csv\r\n\r\n".encode(), body, f"\r\n--{boundary}--\r\n".encode()])
    last = threading.Barrier(2)
    answers: list[Any] = [None, None]

    def chunks() -> Iterator[bytes]:
        # Both bodies end at the same moment: as close together as a client can send them.
        # Which request the server gets to first is its business; the interleaving where both
        # looked the key up before either committed is forced in the next test.
        yield multipart[:-100]
        last.wait()
        yield multipart[-100:]

    def send(i: int) -> None:
        with httpx.Client(base_url=f"http://{host}:{port}", timeout=60) as http:
            answers[i] = http.post(
                "/api/v1/submissions", content=chunks(),
                headers={**bearer(token), "Idempotency-Key": "twin-1",
                         "Content-Type": f"multipart/form-data; boundary={boundary}"})

    threads = [threading.Thread(target=send, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [a.status_code for a in answers] == [202, 202], [a.text for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1
    assert sorted(a.json()["duplicate"] for a in answers) == [False, True]
    with httpx.Client(base_url=f"http://{host}:{port}", timeout=60) as http:
        retry = upload(http, token, body, key="twin-1")
        me = http.get("/api/v1/me", headers=bearer(token)).json()
    assert (retry.status_code, retry.json()["duplicate"]) == (202, True)
    sid = retry.json()["id"]
    assert sid == answers[0].json()["id"]
    engine = make_engine(settings)
    try:
        assert count(engine, "submission") == 1
        assert job(engine, sid) == ("scored", 1, 9)
    finally:
        engine.dispose()
    assert me["quota"]["used"] == 1
    assert list(ArtifactStore.of(settings).tmp_dir.iterdir()) == []


def spooled(store: ArtifactStore, body: bytes) -> Upload:
    """An upload as the router hands it on: form fields, the file spooled in the store's tmp."""
    path = store.tmp_dir / f"upload-file-{time.monotonic_ns()}"
    path.write_bytes(body)
    return Upload(fields={"country": "NL", "method": "mine"},
                  files={"file": UploadedFile(name="file", filename="p.csv", path=path,
                                              size=len(body),
                                              sha256=hashlib.sha256(body).hexdigest())})


@POSTGRES_ONLY
def test_twin_that_passed_the_early_lookup_waits_for_the_first_and_returns_it(
        settings: Settings, make_team: Any, make_predictions: Any) -> None:
    """The interleaving the live test cannot force: both twins looked the key up before either
    committed. The second waits on the team's lock until the first commits, then finds it."""
    team, _ = make_team("alpha")
    store = ArtifactStore.of(settings)
    body = make_predictions()[0]
    first_upload, second_upload = spooled(store, body), spooled(store, body)
    checked = service.validate(settings, first_upload)
    engine = make_engine(settings)
    factory = session_factory(engine)
    second: list[service.Accepted] = []

    def twin() -> None:
        with factory() as session:
            second.append(service.create(session, settings, team, second_upload, checked, "k"))
            session.commit()

    try:
        with factory() as session:
            assert service.existing_for_key(session, team, "k") is None
            first = service.create(session, settings, team, first_upload, checked, "k")
            thread = threading.Thread(target=twin)
            thread.start()

            def twin_waits_on_a_lock() -> bool:
                with engine.connect() as conn:
                    return bool(conn.execute(text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                        "current_database() AND wait_event_type = 'Lock'")).scalar_one())

            wait_for(twin_waits_on_a_lock, 30, "the twin to wait for the first's lock")
            session.commit()
            first_id = first.submission.id
        thread.join()
        second_upload.cleanup()
        assert not first.duplicate
        assert [(a.submission.id, a.duplicate) for a in second] == [(first_id, True)]
        assert count(engine, "submission") == 1
        with factory() as session:
            assert service.quota(session, settings, team).used == 1
    finally:
        engine.dispose()


def test_stored_bytes_that_do_not_fit_leave_no_temp_file(tiny_store: Path) -> None:
    """The worker's predictions (`put_bytes`) on a full store: the error, and nothing half
    written."""
    store = ArtifactStore(tiny_store)
    too_big = os.urandom(shutil.disk_usage(tiny_store).free + 4096)
    with pytest.raises(OSError) as raised:
        store.put_bytes(too_big)
    assert is_full(raised.value)
    assert [p for p in tiny_store.rglob("*") if not p.is_dir()] == []
    assert store.path(store.put_bytes(b"fits")).read_bytes() == b"fits"
