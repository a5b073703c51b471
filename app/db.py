"""Engine, sessions and migrations. SQLite: WAL, a busy timeout and synchronous=FULL per
connection. Alembic owns the schema; `upgrade` runs it from code (CLI, serve and worker start,
tests)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from app.config import Settings


class Base(DeclarativeBase):
    pass


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the API read while the worker writes; FULL so a committed score survives power loss.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


# Every DB call of the API runs in AnyIO's worker threads (40 by default), so a pool at least
# that large means no request ever waits for a connection: under load a pool of 15 made readers
# wait 30 s behind uploads queued on SQLite's write lock, then fail (bench_load: 22 × 500/503).
THREADS = 40
SQLITE_POOL = {"pool_size": 10, "max_overflow": THREADS + 10}
# A server database counts its connections (PostgreSQL: max_connections, 100 by default); the
# API, each worker and the CLI share them.
SERVER_POOL = {"pool_size": 10, "max_overflow": THREADS - 10}


def make_engine(settings: Settings | str) -> Engine:
    url = settings if isinstance(settings, str) else settings.db_url
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 10},
                               **SQLITE_POOL)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, **SERVER_POOL)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any exception."""
    with factory() as session, session.begin():
        yield session


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    # No alembic.ini needed: the scripts are the `migrations` package, shipped in the installed
    # distribution, so a non-editable install migrates too.
    config = Config()
    config.set_main_option("script_location", str(resources.files("migrations")))
    config.attributes["url"] = url
    return config


def upgrade(settings: Settings | str, revision: str = "head") -> None:
    """`alembic upgrade head` for a Settings or a URL."""
    from alembic import command

    url = settings if isinstance(settings, str) else settings.db_url
    command.upgrade(alembic_config(url), revision)
