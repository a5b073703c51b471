"""Shared fixtures for the service tests: databases, a prepared test set, settings, the app.

Databases: every test using `db_url` runs on SQLite and on PostgreSQL (LB_TEST_POSTGRES_URL;
a fresh database per test session, tables emptied between tests). Redis: `redis_url`
(LB_TEST_REDIS_URL). An unreachable server skips with the reason, or fails when CI is set.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

POSTGRES_URL = os.environ.get("LB_TEST_POSTGRES_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("LB_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
TEST_ROWS = 3000
COUNTRY = "NL"


# Modules whose tests are slow by nature, with why; `make test-fast` leaves them out (one list,
# so that a module's nature is stated once, where the inner loop is defined).
SLOW_MODULES = {
    "tests/app/cli/test_demo.py": "runs the demo: processes, training",
    "tests/app/cli/test_service.py": "starts `serve` and `worker` processes",
    "tests/app/cli/test_processes.py": "real child processes and signals",
    "tests/app/jobs/test_queue.py": "worker processes",
    "tests/app/jobs/test_faults.py": "worker processes, injected faults",
    "tests/app/jobs/test_walltime.py": "a sandboxed checkpoint run up to its wall limit",
    "tests/app/jobs/test_liveness.py": "serve and worker processes, signals, private servers",
    "tests/app/test_api_schema.py": "schemathesis fuzzing",
    "tests/app/test_checkpoint_submissions.py": "sandboxed checkpoint runs",
    "tests/app/submissions/test_checkpoint_uploads.py": "sandboxed checkpoint runs",
    "tests/app/submissions/test_budget.py": "a live server, a lock-holding child process",
    "tests/evaluator/checkpoint/test_checkpoint.py": "sandboxed checkpoint runs",
    "tests/evaluator/checkpoint/test_hostile_checkpoints.py": "sandboxed checkpoint runs",
    "tests/evaluator/checkpoint/test_sandbox.py": "sandboxed child processes",
    "tests/evaluator/checkpoint/test_confinement.py": "sandboxed checkpoint runs",
    "tests/evaluator/checkpoint/test_zygote.py": "a zygote process and sandboxed forks",
    "tests/evaluator/checkpoint/test_score_checkpoint_cli.py": "sandboxed checkpoint runs",
    "tests/baselines/test_baseline_export.py": "sandboxed checkpoint runs",
    "tests/browser/test_leaderboard_browser.py": "a real browser",
    "tests/browser/test_participant_browser.py": "a real browser, a server and its worker",
    "tests/test_distribution.py": "builds the wheel",
}
ROOT = Path(__file__).resolve().parent.parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.relative_to(ROOT).as_posix() in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)


def unavailable(what: str, exc: BaseException) -> None:
    message = f"{what} unreachable: {type(exc).__name__}: {exc}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


# ---------------------------------------------------------------------------------- databases


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (cheaper than migrating each time)."""
    from app.db import upgrade

    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A fresh migrated PostgreSQL database for this test session, dropped at the end."""
    from app.db import upgrade

    admin_url = make_url(POSTGRES_URL)
    try:
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        unavailable(f"PostgreSQL at {POSTGRES_URL}", exc)
    name = f"lbtest_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin_url.set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# The challenge state's row is the migration's: reset, never emptied.
TABLES = ("score", "verification", "rescore", "audit_log", "selection", "ladder_decision",
          "final_entry", "process_heartbeat", "submission", "api_token", "team")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    if request.param == "sqlite":
        path = tmp_path / "leaderboard.db"
        shutil.copyfile(sqlite_template, path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("postgres_database")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
        conn.execute(text("UPDATE challenge_state SET revealed = false, revealed_at = NULL, "
                          "schedule_toml = NULL, locked_at = NULL"))
    engine.dispose()
    return url


@pytest.fixture
def redis_url() -> str:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except Exception as exc:
        unavailable(f"Redis at {REDIS_URL}", exc)
    return REDIS_URL


# ------------------------------------------------------------------------------------- data


@pytest.fixture(scope="session")
def prepared_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic test set for NL, prepared once per session."""
    from evaluator.data.prepare import prepare_csv
    from evaluator.data.synth import write_synthetic

    root = tmp_path_factory.mktemp("prepared-template")
    write_synthetic(root / "raw", [COUNTRY], train_rows=0, test_rows=TEST_ROWS, seed=7)
    out = root / "prepared" / COUNTRY
    prepare_csv(root / "raw" / f"AliExpress_{COUNTRY}" / "test.csv", out)
    return out


@pytest.fixture
def data_dir(tmp_path: Path, prepared_template: Path) -> Path:
    """LB_DATA_DIR with a prepared test set for NL (and none for the other countries)."""
    root = tmp_path / "data"
    shutil.copytree(prepared_template, root / "prepared" / COUNTRY)
    return root


@pytest.fixture
def settings(data_dir: Path, db_url: str) -> Any:
    from app.config import Settings

    return Settings(data_dir=data_dir, database_url=db_url, daily_quota=3, lease_seconds=30,
                    max_attempts=3, max_upload_bytes=4 << 20)


@pytest.fixture
def queue(settings: Any) -> Iterator[Any]:
    """The queue in immediate mode: an enqueued job runs at once, in the enqueuing thread."""
    from app.jobs.queue import Queue

    immediate = Queue(settings, immediate=True)
    yield immediate
    immediate.close()


@pytest.fixture
def client(settings: Any, queue: Any) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from app.main import create_app

    with TestClient(create_app(settings, queue)) as test_client:
        yield test_client


@pytest.fixture
def live_server(settings: Any, queue: Any) -> Iterator[tuple[str, int]]:
    """(host, port) of a real uvicorn serving create_app(settings), in a thread of this process."""
    import uvicorn

    from app.main import create_app

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    config = uvicorn.Config(create_app(settings, queue), host="127.0.0.1", port=port,
                            log_level="warning", lifespan="on")
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not instance.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    yield "127.0.0.1", port
    instance.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def make_team(settings: Any) -> Iterator[Callable[..., tuple[Any, str]]]:
    """make_team(name, organiser=False, baseline=False) -> (Team, token)."""
    from app.db import make_engine, session_factory
    from app.teams.service import create_team

    engine = make_engine(settings)
    factory = session_factory(engine)

    def make(name: str, organiser: bool = False, baseline: bool = False) -> tuple[Any, str]:
        with factory() as session:
            team, issued = create_team(session, None, name, organiser=organiser,
                                       baseline=baseline)
            session.commit()
            return team, issued.secret

    yield make
    engine.dispose()


@pytest.fixture
def prepared(data_dir: Path) -> Any:
    from evaluator.data.prepared import PreparedData

    return PreparedData.open(data_dir / "prepared" / COUNTRY)


def prediction_csv(n_rows: int, seed: int = 0, columns: tuple[str, ...] = ("ctr", "cvr"),
                   shuffle: bool = True) -> tuple[bytes, dict[str, np.ndarray]]:
    """A valid prediction file and the arrays it holds (index = row_id)."""
    rng = np.random.default_rng(seed)
    # Parsed back from the written text, so the arrays are exactly what the server reads.
    values = {name: np.array([float(f"{x:.6f}") for x in rng.random(n_rows)])
              for name in columns}
    order = rng.permutation(n_rows) if shuffle else np.arange(n_rows)
    lines = [",".join(("row_id", *columns))]
    for i in order:
        lines.append(",".join([str(i), *(f"{values[c][i]:.6f}" for c in columns)]))
    return ("\n".join(lines) + "\n").encode(), values


@pytest.fixture
def make_predictions(prepared: Any) -> Callable[..., tuple[bytes, dict[str, np.ndarray]]]:
    def make(seed: int = 0, columns: tuple[str, ...] = ("ctr", "cvr")) -> tuple[
            bytes, dict[str, np.ndarray]]:
        return prediction_csv(prepared.n_rows, seed, columns)

    return make


@pytest.fixture(autouse=True)
def _checkpoint_start_default() -> Iterator[None]:
    """A job context sets this process's default checkpoint start (zygote or fresh); no test
    leaves it changed for the next."""
    from evaluator.checkpoint import zygote

    before = zygote.by_default()
    yield
    zygote.use_by_default(before)
