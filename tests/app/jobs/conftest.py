"""A job context whose `enqueue` records what the jobs hand back to the queue."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from app.jobs.context import JobContext, JobKind


@pytest.fixture
def enqueued() -> list[tuple[JobKind, int]]:
    return []


@pytest.fixture
def ctx(settings: Any, enqueued: list[tuple[JobKind, int]]) -> Iterator[JobContext]:
    context = JobContext.create(settings, lambda kind, row_id: enqueued.append((kind, row_id)))
    yield context
    context.close()
