from pathlib import Path

import pandas as pd
import pytest
import scipy.sparse as sp
from data_factories import HEADER
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import OneHotEncoder

from evaluator.data.synth import PROFILES, write_synthetic
from evaluator.schema import CATEGORICAL_COLUMNS, NUMERICAL_COLUMNS

USER_CATEGORICAL = list(CATEGORICAL_COLUMNS[:9])
USER_NUMERICAL = list(NUMERICAL_COLUMNS[:23])


@pytest.fixture(scope="module")
def large(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    out = tmp_path_factory.mktemp("synth")
    write_synthetic(out, ["ES"], train_rows=0, test_rows=200_000, seed=11)
    return pd.read_csv(out / "AliExpress_ES/test.csv")


def _bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.csv"))}


def test_same_seed_writes_the_same_bytes(tmp_path: Path) -> None:
    write_synthetic(tmp_path / "a", ["NL", "US"], train_rows=3_000, test_rows=1_000, seed=5)
    write_synthetic(tmp_path / "b", ["NL", "US"], train_rows=3_000, test_rows=1_000, seed=5)
    assert _bytes(tmp_path / "a") == _bytes(tmp_path / "b")
    assert len(_bytes(tmp_path / "a")) == 4


def test_another_seed_writes_other_data(tmp_path: Path) -> None:
    write_synthetic(tmp_path / "a", ["NL"], train_rows=1_000, test_rows=1_000, seed=5)
    write_synthetic(tmp_path / "b", ["NL"], train_rows=1_000, test_rows=1_000, seed=6)
    a, b = _bytes(tmp_path / "a"), _bytes(tmp_path / "b")
    assert all(a[name] != b[name] for name in a)


def test_train_and_test_differ(tmp_path: Path) -> None:
    write_synthetic(tmp_path, ["FR"], train_rows=2_000, test_rows=2_000, seed=0)
    folder = tmp_path / "AliExpress_FR"
    assert (folder / "train.csv").read_bytes() != (folder / "test.csv").read_bytes()


def test_files_have_the_processed_format_and_the_rows_asked_for(tmp_path: Path) -> None:
    write_synthetic(tmp_path, ["FR"], train_rows=12_345, test_rows=678, seed=1)
    folder = tmp_path / "AliExpress_FR"
    for name, rows in (("train.csv", 12_345), ("test.csv", 678)):
        lines = (folder / name).read_text().splitlines()
        assert lines[0] == HEADER
        assert len(lines) == rows + 1
        assert {len(line.split(",")) for line in lines[1:]} == {82}
        # numerical_58..60 (fields 74..76) are written as the integer 0, as in the real files.
        assert {tuple(line.split(",")[74:77]) for line in lines[1:]} == {("0", "0", "0")}


def test_zero_rows_write_a_header_only(tmp_path: Path) -> None:
    write_synthetic(tmp_path, ["NL"], train_rows=0, test_rows=0, seed=0)
    assert (tmp_path / "AliExpress_NL/test.csv").read_text() == HEADER + "\n"


def test_values_are_in_range(large: pd.DataFrame) -> None:
    numerical = large[list(NUMERICAL_COLUMNS)].to_numpy()
    assert numerical.min() >= 0 and numerical.max() <= 1
    categorical = large[list(CATEGORICAL_COLUMNS)]
    assert (categorical >= 0).all().all()
    assert categorical.max().max() < 300
    assert (large["categorical_1"] == PROFILES["ES"].categorical_1).all()
    assert set(large["click"]) == {0, 1}
    assert not ((large["conversion"] == 1) & (large["click"] == 0)).any()


def test_a_search_page_shares_its_user_features(large: pd.DataFrame) -> None:
    pages = large.groupby("search_id", sort=False)
    assert (pages[USER_CATEGORICAL + USER_NUMERICAL].nunique() == 1).all().all()
    sizes = pages.size().iloc[:-1]  # the last page may be cut by the row count
    low, high = PROFILES["ES"].page_size
    assert sizes.between(low, high).all()
    # A page's rows are contiguous, with increasing ids.
    assert large["search_id"].is_monotonic_increasing


def test_rates_are_like_the_real_ones(large: pd.DataFrame) -> None:
    clicks = large["click"].mean()
    conversions = large["conversion"].mean()
    cvr = large.loc[large["click"] == 1, "conversion"].mean()
    assert 0.019 < clicks < 0.028
    assert 0.0004 < conversions < 0.0011
    assert 0.018 < cvr < 0.045


def test_countries_differ_in_rates_and_structure(tmp_path: Path) -> None:
    write_synthetic(tmp_path, ["NL", "US"], train_rows=0, test_rows=3_000, seed=0)
    nl = pd.read_csv(tmp_path / "AliExpress_NL/test.csv")
    us = pd.read_csv(tmp_path / "AliExpress_US/test.csv")
    assert nl["categorical_1"].iloc[0] != us["categorical_1"].iloc[0]
    assert (
        nl[list(CATEGORICAL_COLUMNS)].max().tolist() != us[list(CATEGORICAL_COLUMNS)].max().tolist()
    )
    assert nl.groupby("search_id").size().max() > us.groupby("search_id").size().max()


def _features(encoder: OneHotEncoder, frame: pd.DataFrame) -> sp.csr_matrix:
    return sp.hstack(
        [encoder.transform(frame[list(CATEGORICAL_COLUMNS)]), frame[list(NUMERICAL_COLUMNS)]]
    ).tocsr()


def test_clicks_and_purchases_are_learnable_but_not_trivial(large: pd.DataFrame) -> None:
    train, test = large.iloc[:140_000], large.iloc[140_000:]
    encoder = OneHotEncoder(handle_unknown="ignore").fit(large[list(CATEGORICAL_COLUMNS)])
    x_train, x_test = _features(encoder, train), _features(encoder, test)

    ctr = LogisticRegression(max_iter=500).fit(x_train, train["click"])
    ctr_auc = roc_auc_score(test["click"], ctr.predict_proba(x_test)[:, 1])
    assert 0.6 < ctr_auc < 0.95

    clicked_train = train["click"].to_numpy() == 1
    clicked_test = test["click"].to_numpy() == 1
    cvr = LogisticRegression(max_iter=500, C=0.1).fit(
        x_train[clicked_train], train["conversion"][clicked_train]
    )
    cvr_auc = roc_auc_score(
        test["conversion"][clicked_test], cvr.predict_proba(x_test[clicked_test])[:, 1]
    )
    assert 0.6 < cvr_auc < 0.99


def test_unknown_countries_and_negative_sizes_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown country 'RU'"):
        write_synthetic(tmp_path, ["RU"], train_rows=10, test_rows=10, seed=0)
    with pytest.raises(ValueError, match="row counts"):
        write_synthetic(tmp_path, ["NL"], train_rows=-1, test_rows=10, seed=0)
