import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from data_factories import HEADER, fixture_path, fixture_rows, synthetic_csv, write_processed

from evaluator.data.errors import DataFormatError
from evaluator.data.prepare import prepare_csv
from evaluator.data.prepared import ARRAY_FILES, PreparedData
from evaluator.data.split import DEFAULT_SPLIT_SALT, public_mask
from evaluator.schema import CATEGORICAL_COLUMNS, NUMERICAL_COLUMNS


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_csv(tmp_path_factory.mktemp("synth"), 5_000, seed=3)


def test_fixture_rows_prepare_without_error(tmp_path: Path) -> None:
    meta = prepare_csv(fixture_path(), tmp_path / "prepared")
    frame = pd.read_csv(fixture_path())
    assert meta.n_rows == 20
    assert meta.n_clicks == frame["click"].sum()
    assert meta.n_conversions == frame["conversion"].sum()


def test_arrays_equal_pandas_reading_the_same_csv(synthetic: Path, tmp_path: Path) -> None:
    prepare_csv(synthetic, tmp_path / "prepared")
    data = PreparedData.open(tmp_path / "prepared")
    frame = pd.read_csv(synthetic)
    assert np.array_equal(data.search_id, frame["search_id"].to_numpy())
    assert np.array_equal(data.categorical, frame[list(CATEGORICAL_COLUMNS)].to_numpy())
    assert np.array_equal(
        data.numerical, frame[list(NUMERICAL_COLUMNS)].to_numpy().astype(np.float32)
    )
    assert np.array_equal(data.click, frame["click"].to_numpy())
    assert np.array_equal(data.conversion, frame["conversion"].to_numpy())
    assert data.click.dtype == np.int8
    assert data.categorical.dtype == np.int32
    assert data.numerical.dtype == np.float32


def test_meta_describes_the_file(synthetic: Path, tmp_path: Path) -> None:
    meta = prepare_csv(synthetic, tmp_path / "prepared")
    frame = pd.read_csv(synthetic)
    assert meta.source_sha256 == hashlib.sha256(synthetic.read_bytes()).hexdigest()
    assert meta.source_name == "test.csv"
    assert meta.n_rows == len(frame)
    assert meta.categorical_max == frame[list(CATEGORICAL_COLUMNS)].max().tolist()
    assert meta.n_clicks == frame["click"].sum()
    assert meta.n_conversions == frame["conversion"].sum()
    assert meta.split_salt == DEFAULT_SPLIT_SALT


def test_public_rows_are_whole_search_pages_chosen_by_the_split(
    synthetic: Path, tmp_path: Path
) -> None:
    meta = prepare_csv(synthetic, tmp_path / "prepared")
    data = PreparedData.open(tmp_path / "prepared")
    sides = pd.DataFrame({"search": data.search_id, "public": data.public})
    assert (sides.groupby("search")["public"].nunique() == 1).all()
    assert np.array_equal(data.public, public_mask(np.asarray(data.search_id)))
    assert meta.n_public == int(data.public.sum())
    assert 0.2 < meta.n_public / meta.n_rows < 0.4


def test_result_does_not_depend_on_the_read_block_size(synthetic: Path, tmp_path: Path) -> None:
    prepare_csv(synthetic, tmp_path / "big")
    prepare_csv(synthetic, tmp_path / "small", block_size=8_192)
    for name in ARRAY_FILES:
        assert (tmp_path / "big" / f"{name}.npy").read_bytes() == (
            tmp_path / "small" / f"{name}.npy"
        ).read_bytes(), name
    assert (tmp_path / "big/meta.json").read_text() == (tmp_path / "small/meta.json").read_text()


def test_another_salt_gives_another_split(synthetic: Path, tmp_path: Path) -> None:
    prepare_csv(synthetic, tmp_path / "a")
    prepare_csv(synthetic, tmp_path / "b", salt="organisers-secret")
    a, b = PreparedData.open(tmp_path / "a"), PreparedData.open(tmp_path / "b")
    assert b.meta.split_salt == "organisers-secret"
    assert not np.array_equal(a.public, b.public)


def _with_fields(row: int, **values: str) -> list[list[str]]:
    rows = fixture_rows()
    for column, value in values.items():
        rows[row][HEADER.split(",").index(column)] = value
    return rows


def _with_field(row: int, column: str, value: str) -> list[list[str]]:
    return _with_fields(row, **{column: value})


REFUSALS = {
    "letters in a categorical": (
        _with_field(4, "categorical_3", "abc"),
        6,
        "categorical_3",
        "'abc' is not an integer",
    ),
    "signed categorical": (
        _with_field(3, "categorical_2", "+4"),
        5,
        "categorical_2",
        "'\\+4' is not an integer",
    ),
    "underscore in a numerical": (
        _with_field(3, "numerical_9", "0_5"),
        5,
        "numerical_9",
        "'0_5' is not a number",
    ),
    "negative categorical": (
        _with_field(2, "categorical_5", "-1"),
        4,
        "categorical_5",
        "-1 is not an integer in",
    ),
    "categorical past int32": (
        _with_field(2, "categorical_7", str(2**31)),
        4,
        "categorical_7",
        "is not an integer in",
    ),
    "nan numerical": (
        _with_field(9, "numerical_4", "nan"),
        11,
        "numerical_4",
        "'nan' is not a finite number",
    ),
    "infinite numerical": (
        _with_field(9, "numerical_40", "inf"),
        11,
        "numerical_40",
        "not a finite",
    ),
    "numerical past float32": (
        _with_field(9, "numerical_2", "1e39"),
        11,
        "numerical_2",
        "1e\\+39 is not a finite float32",
    ),
    "empty field": (_with_field(0, "numerical_1", ""), 2, "numerical_1", "empty value"),
    "click of 2": (_with_field(5, "click", "2"), 7, "click", "2 is not 0 or 1"),
    "conversion without click": (
        _with_fields(7, click="0", conversion="1"),
        9,
        "conversion",
        "without a click",
    ),
}


@pytest.mark.parametrize("case", REFUSALS, ids=list(REFUSALS))
def test_bad_values_are_refused_naming_line_and_column(case: str, tmp_path: Path) -> None:
    rows, line, column, message = REFUSALS[case]
    csv = write_processed(tmp_path / "test.csv", rows)
    with pytest.raises(DataFormatError, match=message) as caught:
        prepare_csv(csv, tmp_path / "prepared")
    assert (caught.value.line, caught.value.column) == (line, column)
    assert f"line {line}, column {column}" in str(caught.value)
    assert not (tmp_path / "prepared").exists()


def test_a_row_with_a_missing_column_is_refused_with_its_line(tmp_path: Path) -> None:
    rows = fixture_rows()
    rows[12] = rows[12][:-1]
    csv = write_processed(tmp_path / "test.csv", rows)
    with pytest.raises(DataFormatError, match="line 14: 81 columns, expected 82"):
        prepare_csv(csv, tmp_path / "prepared")


def test_an_empty_line_is_refused_with_its_line(tmp_path: Path) -> None:
    csv = tmp_path / "test.csv"
    text = write_processed(csv, fixture_rows()).read_text().splitlines(keepends=True)
    csv.write_text("".join([*text[:5], "\n", *text[5:]]))
    with pytest.raises(DataFormatError, match="line 6: empty line"):
        prepare_csv(csv, tmp_path / "prepared")


def test_a_wrong_header_names_the_column(tmp_path: Path) -> None:
    csv = tmp_path / "test.csv"
    csv.write_text(HEADER.replace("numerical_7,", "numerical_seven,") + "\n0" + ",0" * 81 + "\n")
    with pytest.raises(DataFormatError, match="line 1, column numerical_7: header column 23"):
        prepare_csv(csv, tmp_path / "prepared")


def test_a_file_without_a_header_is_refused(tmp_path: Path) -> None:
    csv = tmp_path / "test.csv"
    csv.write_text("".join(",".join(row) + "\n" for row in fixture_rows()))
    with pytest.raises(DataFormatError, match="line 1, column search_id: header column 0"):
        prepare_csv(csv, tmp_path / "prepared")


def test_a_header_only_file_is_refused(tmp_path: Path) -> None:
    csv = tmp_path / "test.csv"
    csv.write_text(HEADER + "\n")
    with pytest.raises(DataFormatError, match="no data rows"):
        prepare_csv(csv, tmp_path / "prepared")


def test_a_failed_prepare_keeps_the_old_folder_and_leaves_nothing_behind(
    synthetic: Path, tmp_path: Path
) -> None:
    out = tmp_path / "prepared"
    old = prepare_csv(synthetic, out)
    bad = write_processed(tmp_path / "bad.csv", _with_field(19, "click", "7"))
    with pytest.raises(DataFormatError):
        prepare_csv(bad, out)
    assert PreparedData.open(out).meta == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv", "prepared"]


def test_a_good_prepare_replaces_an_old_prepared_folder(synthetic: Path, tmp_path: Path) -> None:
    out = tmp_path / "prepared"
    prepare_csv(synthetic, out)
    meta = prepare_csv(fixture_path(), out)
    assert PreparedData.open(out).meta == meta
    assert PreparedData.open(out).n_rows == 20
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prepared"]


def test_a_folder_that_is_not_a_prepared_folder_is_not_overwritten(tmp_path: Path) -> None:
    out = tmp_path / "precious"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a prepared folder"):
        prepare_csv(fixture_path(), out)
    assert (out / "notes.txt").read_text() == "keep me"


def test_a_missing_csv_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="no such file"):
        prepare_csv(tmp_path / "nope.csv", tmp_path / "prepared")


def test_a_giant_field_is_refused_with_its_line(tmp_path: Path) -> None:
    rows = fixture_rows()
    rows[1][3] = "9" * 200_000
    csv = write_processed(tmp_path / "test.csv", rows)
    with pytest.raises(DataFormatError, match="line 3: unreadable: field larger"):
        prepare_csv(csv, tmp_path / "prepared")
