"""Database fixtures of the leaderboard tests (on the shared, migrated `db_url`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app.db import make_engine, session_factory


@pytest.fixture
def lb_engine(db_url: str) -> Iterator[Engine]:
    """The shared `db_url` (SQLite, and PostgreSQL when reachable), already migrated."""
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def lb_session(lb_engine: Engine) -> Iterator[Session]:
    with session_factory(lb_engine)() as session:
        yield session
