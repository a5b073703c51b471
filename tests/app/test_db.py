"""Engines: a pool that never makes an API thread wait for a connection."""

from __future__ import annotations

from pathlib import Path

import anyio.to_thread
import pytest
from sqlalchemy.pool import QueuePool

from app.db import make_engine


async def _api_threads() -> int:
    return int(anyio.to_thread.current_default_thread_limiter().total_tokens)


def threads_of_the_api() -> int:
    # FastAPI runs every sync dependency and endpoint in AnyIO's default thread pool.
    return anyio.run(_api_threads)


@pytest.mark.parametrize("url", ["sqlite", "postgresql+psycopg://u@127.0.0.1:1/db"])
def test_the_pool_holds_a_connection_for_every_api_thread(url: str, tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}" if url == "sqlite" else url)
    try:
        pool = engine.pool
        assert isinstance(pool, QueuePool)
        assert pool.size() + pool._max_overflow >= threads_of_the_api()
    finally:
        engine.dispose()
