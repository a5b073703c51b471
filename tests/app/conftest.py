"""Fixtures of the app tests: a session on the shared, migrated `db_url`, and one `World`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from app_factories import World
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


@pytest.fixture
def world(tmp_path: Path, db_url: str) -> Iterator[World]:
    w = World(tmp_path, db_url)
    yield w
    w.close()
