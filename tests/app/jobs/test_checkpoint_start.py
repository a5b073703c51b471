"""How the worker's checkpoint jobs start their sandboxed child: LB_CHECKPOINT_ZYGOTE."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.config import Settings
from app.jobs.context import JobContext
from evaluator.checkpoint import zygote


@pytest.fixture(autouse=True)
def restore_default() -> Iterator[None]:
    before = zygote.by_default()
    yield
    zygote.use_by_default(before)


def test_a_worker_forks_its_checkpoints_from_a_zygote_by_default(tmp_path: Path) -> None:
    zygote.use_by_default(False)
    settings = Settings(data_dir=tmp_path)
    assert settings.checkpoint_zygote is True
    JobContext.create(settings, lambda kind, row_id: None).close()
    assert zygote.by_default() is True


def test_lb_checkpoint_zygote_false_gives_fresh_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LB_CHECKPOINT_ZYGOTE", "false")
    zygote.use_by_default(True)
    settings = Settings(data_dir=tmp_path)
    assert settings.checkpoint_zygote is False
    JobContext.create(settings, lambda kind, row_id: None).close()
    assert zygote.by_default() is False
