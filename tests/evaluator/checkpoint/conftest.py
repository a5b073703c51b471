"""Shared, built-once data for the checkpoint tests (building a prepared set takes seconds)."""

from __future__ import annotations

from pathlib import Path

import pytest
from checkpoint_factories import honest_model, make_prepared, save


@pytest.fixture(scope="session")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_prepared(tmp_path_factory.mktemp("prepared"), rows=600)


@pytest.fixture(scope="session")
def honest_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save(honest_model(), tmp_path_factory.mktemp("honest") / "honest.pt")
