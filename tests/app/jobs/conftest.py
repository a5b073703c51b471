"""A job context whose `enqueue` records what the jobs hand back to the queue; a redis-server of
a test's own; a tiny artifact store that runs out of space."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fault_factories import ThrowawayRedis

from app.jobs.context import JobContext, JobKind


@pytest.fixture
def enqueued() -> list[tuple[JobKind, int]]:
    return []


@pytest.fixture
def ctx(settings: Any, enqueued: list[tuple[JobKind, int]]) -> Iterator[JobContext]:
    context = JobContext.create(settings, lambda kind, row_id: enqueued.append((kind, row_id)))
    yield context
    context.close()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[ThrowawayRedis]:
    server = ThrowawayRedis(tmp_path)
    server.start()
    yield server
    server.kill()


@pytest.fixture
def tiny_store(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs: a real filesystem that runs out of space."""
    mount = tmp_path / "tiny-artifacts"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs for a full artifact store needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)
