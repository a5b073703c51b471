"""Training data: prepared folders located (or made) under a data root, turned into tensors once
and sliced into batches by index, never row by row.

`--data DIR` layouts, looked up per country CC in this order:
    DIR/prepared/CC/train/ and DIR/prepared/CC/test/   prepared folders (`leaderboard data prepare`)
    DIR/prepared/CC/                                   the service's prepared test set, used as test
    DIR/AliExpress_CC/train.csv and test.csv           processed CSVs: prepared once into
                                                       DIR/prepared/CC/{train,test}/ and reused
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch

from evaluator.data.prepared import META_FILE, PreparedData
from evaluator.schema import COUNTRIES, Country

log = logging.getLogger(__name__)


class DataNotFound(Exception):
    """A country's train or test data is missing under the data root."""


@dataclass(frozen=True)
class CountryData:
    country: Country
    train: PreparedData
    test: PreparedData

    @property
    def field_dims(self) -> list[int]:
        """Vocabulary size per field over train and test features together (SPEC: the test
        features are public), so a test value unseen in train still has its own row."""
        return [
            max(a, b) + 1
            for a, b in zip(
                self.train.meta.categorical_max, self.test.meta.categorical_max, strict=True
            )
        ]


def _is_prepared(folder: Path) -> bool:
    return (folder / META_FILE).is_file()


def _locate_split(root: Path, country: Country, split: str, progress: bool) -> Path:
    cached = root / "prepared" / country / split
    if _is_prepared(cached):
        return cached
    if split == "test" and _is_prepared(root / "prepared" / country):
        return root / "prepared" / country
    csv = root / f"AliExpress_{country}" / f"{split}.csv"
    if csv.is_file():
        from evaluator.data.prepare import prepare_csv  # pyarrow is heavy: only when needed

        log.info("preparing %s into %s", csv, cached)
        prepare_csv(csv, cached, progress=progress)
        return cached
    raise DataNotFound(
        f"no {split} data for {country} under {root}: expected a prepared folder {cached} "
        f"or the processed CSV {csv}"
    )


def load_country(root: Path, country: Country, progress: bool = False) -> CountryData:
    root = Path(root)
    if not root.is_dir():
        raise DataNotFound(f"data root {root} is not a folder")
    train = PreparedData.open(_locate_split(root, country, "train", progress))
    test = PreparedData.open(_locate_split(root, country, "test", progress))
    return CountryData(country=country, train=train, test=test)


def available_countries(root: Path) -> list[Country]:
    """Countries with train data under the root, in SPEC order."""
    root = Path(root)
    return [
        cc
        for cc in COUNTRIES
        if (root / f"AliExpress_{cc}" / "train.csv").is_file()
        or _is_prepared(root / "prepared" / cc / "train")
    ]


def validation_mask(
    search_id: npt.NDArray[np.int64], fraction: float, seed: int
) -> npt.NDArray[np.bool_]:
    """Hold out whole search pages: items of one page share user features, so splitting a page
    across train and validation would flatter the validation AUC."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation fraction must lie strictly between 0 and 1, got {fraction}")
    pages, page_of_row = np.unique(np.asarray(search_id), return_inverse=True)
    chosen = np.random.default_rng(seed).random(len(pages)) < fraction
    return chosen[page_of_row]


@dataclass(frozen=True)
class Tensors:
    """Rows as tensors on one device. Categoricals stay int32 (half the memory of int64); the
    model widens them."""

    categorical: torch.Tensor  # int32 [N, 16]
    numerical: torch.Tensor  # float32 [N, 63]
    labels: torch.Tensor  # float32 [N, 2]: click, conversion

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @classmethod
    def from_prepared(
        cls,
        data: PreparedData,
        rows: npt.NDArray[np.bool_] | None = None,
        device: torch.device | str = "cpu",
    ) -> Tensors:
        def take(array: npt.NDArray[np.generic]) -> npt.NDArray[np.generic]:
            return np.ascontiguousarray(array if rows is None else array[rows])

        labels = np.stack([take(data.click), take(data.conversion)], axis=1).astype(np.float32)
        return cls(
            categorical=torch.from_numpy(take(data.categorical).astype(np.int32)).to(device),
            numerical=torch.from_numpy(take(data.numerical).astype(np.float32)).to(device),
            labels=torch.from_numpy(labels).to(device),
        )

    def batches(
        self, batch_size: int, generator: torch.Generator | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Shuffled batches when a generator is given, else in order. A shuffled trailing batch
        of one row is dropped: BatchNorm cannot train on it."""
        n = len(self)
        if generator is None:
            for start in range(0, n, batch_size):
                end = start + batch_size
                yield (
                    self.categorical[start:end],
                    self.numerical[start:end],
                    self.labels[start:end],
                )
            return
        order = torch.randperm(n, generator=generator, device=generator.device)
        for start in range(0, n, batch_size):
            index = order[start : start + batch_size]
            if len(index) < 2:
                break
            yield self.categorical[index], self.numerical[index], self.labels[index]
