"""A synthetic AliExpress-like data set in exactly the processed format, for demos and tests.

What it imitates (SPEC "Data", notes §6-7): rows grouped into search pages of 10-30 items that
share `search_id`, the user categoricals (`categorical_1..9`) and the user numericals
(`numerical_1..23`); small categorical vocabularies with skewed frequencies (`categorical_1` a
per-country constant, as in the real rows); numericals in [0, 1], many of them sparse,
`numerical_58..60` always the integer 0; clicks on about 2-2.5 % of impressions and purchases on
2-4 % of clicks, different per country.

Labels come from two logistic models with learnable structure: per-value effects of the
categoricals, a user × item interaction, and hidden page and item factors that the numericals
measure with noise. The CVR model shares part of its effects with the CTR model (so learning the
tasks together helps) and has signal of its own (so it is a different task). Its intercepts are
calibrated on a fixed pilot sample, so the rates do not depend on the number of rows asked for.

Output is a pure function of (countries, rows, seed): same arguments, same bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from evaluator.schema import (
    COUNTRIES,
    N_CATEGORICAL,
    N_NUMERICAL,
    PROCESSED_COLUMNS,
    Country,
    parse_country,
)

__all__ = ["DEFAULT_TEST_ROWS", "DEFAULT_TRAIN_ROWS", "PROFILES", "write_synthetic"]

DEFAULT_TRAIN_ROWS: Final = 20_000
DEFAULT_TEST_ROWS: Final = 10_000

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# Vocabulary allowances of the real NL data (notes §7); field 1 is a per-country constant.
_BASE_VOCAB: Final = (1, 20, 35, 10, 10, 35, 185, 40, 40, 10, 10, 10, 10, 10, 10, 10)
_N_USER_CATEGORICAL: Final = 9  # categorical_1..9 come from the user file: one value per page
_N_USER_NUMERICAL: Final = 23  # numerical_1..23 likewise
_ZERO_NUMERICALS: Final = (58, 59, 60)  # 1-based; always the integer 0 in the real files
_N_LATENT: Final = 4  # hidden factors: 2 per page, 2 per item
_PAGES_PER_CHUNK: Final = 8_000
_PILOT_PAGES: Final = 10_000


@dataclass(frozen=True)
class CountryProfile:
    """The country's own rates and structure."""

    index: int
    ctr: float  # clicks / impressions
    cvr: float  # purchases / clicks
    categorical_1: int  # the constant value of categorical_1
    page_size: tuple[int, int]  # items per search page, inclusive range


PROFILES: Final[dict[Country, CountryProfile]] = {
    "NL": CountryProfile(0, ctr=0.022, cvr=0.030, categorical_1=8, page_size=(10, 30)),
    "ES": CountryProfile(1, ctr=0.025, cvr=0.027, categorical_1=9, page_size=(12, 30)),
    "FR": CountryProfile(2, ctr=0.021, cvr=0.025, categorical_1=7, page_size=(10, 26)),
    "US": CountryProfile(3, ctr=0.023, cvr=0.034, categorical_1=6, page_size=(10, 24)),
}


def write_synthetic(
    out: Path,
    countries: Iterable[Country | str] = COUNTRIES,
    train_rows: int = DEFAULT_TRAIN_ROWS,
    test_rows: int = DEFAULT_TEST_ROWS,
    seed: int = 0,
) -> None:
    """Write `out/AliExpress_{CC}/train.csv` and `test.csv` for each country."""
    if train_rows < 0 or test_rows < 0:
        raise ValueError("row counts must be >= 0")
    if seed < 0:
        raise ValueError("seed must be >= 0")
    codes = [parse_country(str(code)) for code in countries]
    for code in codes:
        model = _CountryModel(code, seed)
        folder = Path(out) / f"AliExpress_{code}"
        folder.mkdir(parents=True, exist_ok=True)
        for split_index, (name, rows) in enumerate((("train", train_rows), ("test", test_rows))):
            rng = np.random.default_rng([seed, PROFILES[code].index, 1 + split_index])
            _write_csv(folder / f"{name}.csv", model.chunks(rng, rows))


@dataclass
class _Chunk:
    search_id: IntArray
    categorical: IntArray  # [n, 16]
    numerical: FloatArray  # [n, 63]
    click: IntArray
    conversion: IntArray


@dataclass
class _Draw:
    page: IntArray  # page number of each row, 0-based within the draw
    categorical: IntArray
    latent: FloatArray  # [n, 4]: two page factors, two item factors
    ctr: FloatArray
    cvr: FloatArray


class _CountryModel:
    """The country's generative model; its parameters depend on (seed, country) only."""

    def __init__(self, country: Country, seed: int) -> None:
        self.profile = PROFILES[country]
        rng = np.random.default_rng([seed, self.profile.index, 0])
        scale = rng.uniform(0.8, 1.25, N_CATEGORICAL)
        self.vocab = [
            1 if f == 0 else max(2, round(size * scale[f])) for f, size in enumerate(_BASE_VOCAB)
        ]
        # Zipf-like frequencies in a random order, so that a value's index says nothing.
        self.frequencies: list[FloatArray] = []
        for size in self.vocab:
            weights = (np.arange(size) + 1.0) ** -rng.uniform(0.7, 1.3)
            self.frequencies.append(rng.permutation(weights / weights.sum()))
        field_strength = rng.choice([0.0, 0.1, 0.2, 0.35], N_CATEGORICAL, p=[0.2, 0.3, 0.3, 0.2])
        self.ctr_effect = [
            rng.normal(0, s, v) for s, v in zip(field_strength, self.vocab, strict=True)
        ]
        shared = rng.uniform(0.3, 0.7)
        self.cvr_effect = [
            shared * e + np.sqrt(1 - shared**2) * rng.normal(0, 0.35, e.size)
            for e in self.ctr_effect
        ]
        # User × item interactions: (user field, item field) index pairs, different per task.
        self.ctr_pair = (2, 11)
        self.cvr_pair = (6, 13)
        self.ctr_interaction = rng.normal(0, 0.4, (self.vocab[2], self.vocab[11]))
        self.cvr_interaction = rng.normal(0, 0.6, (self.vocab[6], self.vocab[13]))
        self.ctr_latent = rng.normal(0, 0.3, _N_LATENT)
        self.cvr_latent = 0.5 * self.ctr_latent + rng.normal(0, 0.6, _N_LATENT)
        # How each numerical measures the hidden factors: user numericals see the page factors,
        # item numericals mostly the item factors.
        self.loadings = rng.normal(0, 1, (N_NUMERICAL, _N_LATENT))
        self.loadings[:_N_USER_NUMERICAL, 2:] = 0
        self.loadings[_N_USER_NUMERICAL:, :2] *= 0.3
        self.offsets = rng.normal(-0.5, 1.0, N_NUMERICAL)
        self.noise = rng.uniform(0.3, 1.5, N_NUMERICAL)
        self.sparsity = np.where(
            rng.random(N_NUMERICAL) < 0.4, rng.uniform(0.5, 0.95, N_NUMERICAL), 0
        )
        self.binary = rng.random(N_NUMERICAL) < 0.15
        self.decimals = rng.choice([4, 5, 6], N_NUMERICAL)
        self.zero = np.zeros(N_NUMERICAL, dtype=bool)
        self.zero[[i - 1 for i in _ZERO_NUMERICALS]] = True
        self.ctr_bias = 0.0
        self.cvr_bias = 0.0
        self._calibrate(np.random.default_rng([seed, self.profile.index, 99]))

    def _draw(self, rng: np.random.Generator, n_pages: int) -> _Draw:
        """Pages, their categoricals and hidden factors, and the two logits without intercept."""
        low, high = self.profile.page_size
        sizes = rng.integers(low, high + 1, n_pages)
        page = np.repeat(np.arange(n_pages), sizes)
        n = int(sizes.sum())
        categorical = np.empty((n, N_CATEGORICAL), dtype=np.int64)
        for f in range(N_CATEGORICAL):
            draws = n_pages if f < _N_USER_CATEGORICAL else n
            values = rng.choice(self.vocab[f], size=draws, p=self.frequencies[f])
            categorical[:, f] = values[page] if f < _N_USER_CATEGORICAL else values
        categorical[:, 0] = self.profile.categorical_1
        latent = np.concatenate(
            [rng.normal(0, 1, (n_pages, 2))[page], rng.normal(0, 1, (n, 2))], axis=1
        )
        ctr = latent @ self.ctr_latent
        cvr = latent @ self.cvr_latent
        # categorical_1 is constant within a country: no effect.
        for f in range(1, N_CATEGORICAL):
            ctr += self.ctr_effect[f][categorical[:, f]]
            cvr += self.cvr_effect[f][categorical[:, f]]
        ctr += self.ctr_interaction[
            categorical[:, self.ctr_pair[0]], categorical[:, self.ctr_pair[1]]
        ]
        cvr += self.cvr_interaction[
            categorical[:, self.cvr_pair[0]], categorical[:, self.cvr_pair[1]]
        ]
        return _Draw(page, categorical, latent, ctr, cvr)

    def _numerical(self, rng: np.random.Generator, draw: _Draw) -> FloatArray:
        """Noisy, rounded, partly sparse measurements of the hidden factors, in [0, 1]."""
        n, n_pages = draw.page.size, int(draw.page[-1]) + 1
        noise = rng.normal(0, 1, (n, N_NUMERICAL))
        noise[:, :_N_USER_NUMERICAL] = rng.normal(0, 1, (n_pages, _N_USER_NUMERICAL))[draw.page]
        raw = _sigmoid(draw.latent @ self.loadings.T + self.offsets + noise * self.noise)
        numerical = np.where(self.binary, (raw > 0.5).astype(np.float64), raw)
        keep = rng.random((n, N_NUMERICAL))
        keep[:, :_N_USER_NUMERICAL] = rng.random((n_pages, _N_USER_NUMERICAL))[draw.page]
        numerical = np.where(keep < self.sparsity, 0.0, numerical)
        numerical[:, self.zero] = 0.0
        for j in range(N_NUMERICAL):
            numerical[:, j] = np.round(numerical[:, j], self.decimals[j])
        return numerical

    def _calibrate(self, rng: np.random.Generator) -> None:
        draw = self._draw(rng, _PILOT_PAGES)
        self.ctr_bias = _solve_bias(draw.ctr, np.ones_like(draw.ctr), self.profile.ctr)
        p_click = _sigmoid(draw.ctr + self.ctr_bias)
        self.cvr_bias = _solve_bias(draw.cvr, p_click, self.profile.cvr)

    def chunks(self, rng: np.random.Generator, rows: int) -> Iterable[_Chunk]:
        next_id = 1
        remaining = rows
        smallest_page = self.profile.page_size[0]
        while remaining > 0:
            n_pages = min(_PAGES_PER_CHUNK, -(-remaining // smallest_page))
            draw = self._draw(rng, n_pages)
            numerical = self._numerical(rng, draw)
            click = rng.random(draw.ctr.size) < _sigmoid(draw.ctr + self.ctr_bias)
            bought = rng.random(draw.cvr.size) < _sigmoid(draw.cvr + self.cvr_bias)
            take = min(remaining, draw.page.size)
            remaining -= take
            yield _Chunk(
                search_id=draw.page[:take] + next_id,
                categorical=draw.categorical[:take],
                numerical=numerical[:take],
                click=click[:take].astype(np.int64),
                conversion=(bought & click)[:take].astype(np.int64),
            )
            next_id += n_pages


def _sigmoid(x: FloatArray) -> FloatArray:
    result: FloatArray = 1 / (1 + np.exp(-x))
    return result


def _solve_bias(signal: FloatArray, weight: FloatArray, target: float) -> float:
    """The intercept b with sum(weight · sigmoid(signal + b)) / sum(weight) = target."""
    low, high = -30.0, 30.0
    for _ in range(60):
        middle = (low + high) / 2
        rate = float(np.sum(weight * _sigmoid(signal + middle)) / np.sum(weight))
        low, high = (middle, high) if rate < target else (low, middle)
    return (low + high) / 2


def _write_csv(path: Path, chunks: Iterable[_Chunk]) -> None:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    names: Sequence[str] = PROCESSED_COLUMNS
    zero = np.zeros(N_NUMERICAL, dtype=bool)
    zero[[i - 1 for i in _ZERO_NUMERICALS]] = True
    options = pacsv.WriteOptions(include_header=False)
    # Written beside the target and renamed, so an interrupted run leaves no truncated file.
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as handle:
        # pyarrow quotes the names of a header it writes; the real files have none.
        handle.write((",".join(names) + "\n").encode())
        for chunk in chunks:
            columns: list[pa.Array] = [pa.array(chunk.search_id)]
            columns += [pa.array(chunk.categorical[:, f]) for f in range(N_CATEGORICAL)]
            for j in range(N_NUMERICAL):
                values = chunk.numerical[:, j]
                # Arrow writes floats in their shortest form ("0.1359", "1", "0").
                columns.append(pa.array(values.astype(np.int64) if zero[j] else values))
            columns += [pa.array(chunk.click), pa.array(chunk.conversion)]
            pacsv.write_csv(pa.Table.from_arrays(columns, names=list(names)), handle, options)
    tmp.replace(path)
