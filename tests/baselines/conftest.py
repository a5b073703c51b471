"""Synthetic data built once per session: the real generator and the real `prepare`."""

from __future__ import annotations

from pathlib import Path

import pytest
from baselines_factories import tiny_config

from baselines.data import CountryData, load_country
from baselines.train import train
from evaluator.data.synth import write_synthetic


@pytest.fixture(scope="session")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("aliexpress")
    write_synthetic(root, ["NL"], train_rows=6_000, test_rows=2_000, seed=3)
    return root


@pytest.fixture(scope="session")
def nl_data(data_root: Path) -> CountryData:
    return load_country(data_root, "NL")


@pytest.fixture(scope="session")
def esmm_run(nl_data: CountryData, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "NL_esmm"
    train(tiny_config("esmm"), nl_data, run, progress=False, threads=1)
    return run


@pytest.fixture(scope="session")
def mmoe_run(nl_data: CountryData, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "NL_mmoe"
    train(tiny_config("mmoe"), nl_data, run, progress=False, threads=1)
    return run
