"""Locating, preparing and batching training data (baselines/data.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from baselines.data import (
    CountryData,
    DataNotFound,
    Tensors,
    available_countries,
    load_country,
    validation_mask,
)


def test_processed_csvs_are_prepared_into_the_cache_once(
    data_root: Path, nl_data: CountryData
) -> None:
    train_dir = data_root / "prepared" / "NL" / "train"
    assert nl_data.train.path == train_dir
    assert nl_data.test.path == data_root / "prepared" / "NL" / "test"
    stamp = (train_dir / "meta.json").stat().st_mtime_ns
    again = load_country(data_root, "NL")
    assert (train_dir / "meta.json").stat().st_mtime_ns == stamp
    assert again.train.n_rows == 6_000 and again.test.n_rows == 2_000


def test_the_services_prepared_test_folder_serves_as_test(
    nl_data: CountryData, tmp_path: Path
) -> None:
    # $LB_DATA_DIR/prepared/CC is the service's test set; train data sits beside it.
    shutil.copytree(nl_data.test.path, tmp_path / "prepared" / "NL")
    shutil.copytree(nl_data.train.path, tmp_path / "prepared" / "NL" / "train")
    data = load_country(tmp_path, "NL")
    assert data.test.path == tmp_path / "prepared" / "NL"


def test_missing_data_names_the_paths_it_looked_for(tmp_path: Path) -> None:
    with pytest.raises(DataNotFound, match=r"AliExpress_FR[/\\]train\.csv"):
        load_country(tmp_path, "FR")


def test_available_countries_lists_those_with_train_data(data_root: Path, tmp_path: Path) -> None:
    assert available_countries(data_root) == ["NL"]
    assert available_countries(tmp_path) == []


def test_vocabulary_covers_train_and_test_features(nl_data: CountryData) -> None:
    train_max = np.asarray(nl_data.train.categorical).max(axis=0)
    test_max = np.asarray(nl_data.test.categorical).max(axis=0)
    assert nl_data.field_dims == [int(v) + 1 for v in np.maximum(train_max, test_max)]


def test_validation_holds_out_whole_search_pages() -> None:
    search_id = np.repeat(np.arange(500), 7)
    held = validation_mask(search_id, 0.2, seed=1)
    for page in range(500):
        assert len(set(held[search_id == page])) == 1
    assert 0.1 < held.mean() < 0.3


def test_validation_split_is_fixed_by_the_seed() -> None:
    search_id = np.repeat(np.arange(300), 5)
    assert np.array_equal(validation_mask(search_id, 0.1, 7), validation_mask(search_id, 0.1, 7))
    assert not np.array_equal(
        validation_mask(search_id, 0.1, 7), validation_mask(search_id, 0.1, 8)
    )


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1])
def test_validation_fraction_must_lie_inside_zero_and_one(fraction: float) -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        validation_mask(np.arange(10), fraction, 0)


def test_tensors_keep_the_selected_rows_and_labels(nl_data: CountryData) -> None:
    rows = np.zeros(nl_data.train.n_rows, dtype=bool)
    rows[[3, 10, 42]] = True
    tensors = Tensors.from_prepared(nl_data.train, rows)
    assert len(tensors) == 3
    assert torch.equal(
        tensors.categorical, torch.from_numpy(np.asarray(nl_data.train.categorical)[rows])
    )
    assert tensors.labels[:, 0].tolist() == np.asarray(nl_data.train.click)[rows].tolist()
    assert tensors.labels[:, 1].tolist() == np.asarray(nl_data.train.conversion)[rows].tolist()


def _tensors(n: int) -> Tensors:
    return Tensors(
        categorical=torch.arange(n, dtype=torch.int32).repeat(16, 1).T.contiguous(),
        numerical=torch.zeros(n, 63),
        labels=torch.zeros(n, 2),
    )


def test_shuffled_batches_cover_every_row_once() -> None:
    tensors = _tensors(1000)
    seen = torch.cat(
        [c[:, 0] for c, _, _ in tensors.batches(128, torch.Generator().manual_seed(0))]
    )
    assert sorted(seen.tolist()) == list(range(1000))
    assert seen.tolist() != list(range(1000))


def test_a_shuffled_trailing_batch_of_one_row_is_dropped() -> None:
    sizes = [len(c) for c, _, _ in _tensors(257).batches(128, torch.Generator().manual_seed(0))]
    assert sizes == [128, 128]


def test_ordered_batches_keep_row_order_and_the_last_row() -> None:
    rows = torch.cat([c[:, 0] for c, _, _ in _tensors(257).batches(128)])
    assert rows.tolist() == list(range(257))
