from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from data_factories import (
    fixture_rows,
    processed_text,
    raw_item_fields,
    raw_user_fields,
    write_lines,
)

from evaluator.data.errors import DataFormatError
from evaluator.data.raw import process_raw, process_raw_split
from evaluator.schema import PROCESSED_COLUMNS


def upstream_process(user_file: Path, item_file: Path) -> pd.DataFrame:
    """The challenge's process_aliexpress.py for one split, kept to its logic."""
    user = pd.read_csv(user_file, header=None, names=[f"user_{i}" for i in range(1, 34)])
    item = pd.read_csv(item_file, header=None, names=[f"item_{i}" for i in range(1, 50)])
    data = pd.merge(user, item, left_on="user_1", right_on="item_1", how="inner")
    categorical = (
        [f"user_{i}" for i in range(1, 9)]
        + ["user_32", "user_33"]
        + [f"item_{i}" for i in [19, 34, 35, 36, 40, 41, 42]]
    )
    item_index = [i for i in range(2, 49) if i not in [19, 34, 35, 36, 40, 41, 42]]
    numerical = [f"user_{i}" for i in range(9, 32)] + [f"item_{i}" for i in item_index]
    labels = {0: [0, 0], 1: [1, 0], 2: [1, 1]}
    label = pd.DataFrame(
        np.array([labels[v] for v in data["item_49"]]).reshape(-1, 2),
        columns=["click", "conversion"],
    )
    frame = pd.concat(
        [data[categorical].reset_index(drop=True), data[numerical].reset_index(drop=True), label],
        axis=1,
    )
    frame.columns = list(PROCESSED_COLUMNS)
    return frame


def test_raw_files_of_known_rows_give_back_the_same_rows(tmp_path: Path) -> None:
    rows = fixture_rows()
    pages = list(dict.fromkeys(row[0] for row in rows))
    # Users and items in reverse order: the output follows the user file, then the item file.
    users = [raw_user_fields(next(r for r in rows if r[0] == page)) for page in reversed(pages)]
    items = [raw_item_fields(row) for row in reversed(rows)]
    user_file = write_lines(tmp_path / "nl_user_test.csv", users)
    item_file = write_lines(tmp_path / "nl_item_test.csv", items)

    report = process_raw_split(user_file, item_file, tmp_path / "test.csv")

    expected = [row for page in reversed(pages) for row in reversed(rows) if row[0] == page]
    assert (tmp_path / "test.csv").read_text() == processed_text(expected)
    assert report.rows_written == 20
    assert report.items_without_user == 0


def _random_raw(tmp_path: Path, seed: int) -> tuple[Path, Path]:
    rng = np.random.default_rng(seed)
    n_users, n_items = 40, 400
    users = []
    # Ids 0..59 with repeats: some searches have two user rows, some items no user row.
    for search in rng.integers(0, 60, n_users):
        fields = [str(search)] + [f"{v:.4f}" for v in rng.random(32)]
        for i in (2, 3, 4, 5, 6, 7, 8, 32, 33):
            fields[i - 1] = str(rng.integers(0, 30))
        users.append(fields)
    items = []
    for search in rng.integers(0, 60, n_items):
        fields = [str(search)] + [f"{v:.5f}" for v in rng.random(48)]
        for i in (19, 34, 35, 36, 40, 41, 42):
            fields[i - 1] = str(rng.integers(0, 50))
        fields[48] = str(rng.choice([0, 1, 2], p=[0.8, 0.15, 0.05]))
        items.append(fields)
    return (
        write_lines(tmp_path / "user.csv", users),
        write_lines(tmp_path / "item.csv", items),
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_output_matches_the_upstream_pandas_merge(tmp_path: Path, seed: int) -> None:
    user_file, item_file = _random_raw(tmp_path, seed)
    report = process_raw_split(user_file, item_file, tmp_path / "test.csv")
    ours = pd.read_csv(tmp_path / "test.csv")
    upstream = upstream_process(user_file, item_file)
    assert list(ours.columns) == list(PROCESSED_COLUMNS)
    assert report.rows_written == len(upstream)
    pd.testing.assert_frame_equal(ours, upstream, check_dtype=False)


def test_items_without_a_user_row_are_dropped_and_counted(tmp_path: Path) -> None:
    rows = fixture_rows()
    kept = rows[0][0]
    users = [raw_user_fields(rows[0])]
    items = [raw_item_fields(row) for row in rows]
    report = process_raw_split(
        write_lines(tmp_path / "u.csv", users),
        write_lines(tmp_path / "i.csv", items),
        tmp_path / "test.csv",
    )
    expected = [row for row in rows if row[0] == kept]
    assert (tmp_path / "test.csv").read_text() == processed_text(expected)
    assert report.items_without_user == 20 - len(expected)


def _refusal(tmp_path: Path, users: list[list[str]], items: list[list[str]]) -> DataFormatError:
    with pytest.raises(DataFormatError) as caught:
        process_raw_split(
            write_lines(tmp_path / "u.csv", users),
            write_lines(tmp_path / "i.csv", items),
            tmp_path / "test.csv",
        )
    assert not (tmp_path / "test.csv").exists()
    return caught.value


def test_a_user_row_with_the_wrong_column_count_is_refused(tmp_path: Path) -> None:
    rows = fixture_rows()
    users = [raw_user_fields(row) for row in rows[:3]]
    users[1].append("0")
    error = _refusal(tmp_path, users, [raw_item_fields(rows[0])])
    assert "u.csv, line 2: 34 columns, expected 33" in str(error)


def test_an_item_row_with_the_wrong_column_count_is_refused(tmp_path: Path) -> None:
    rows = fixture_rows()
    items = [raw_item_fields(row) for row in rows]
    items[4] = items[4][:-2]
    error = _refusal(tmp_path, [raw_user_fields(rows[0])], items)
    assert "i.csv, line 5: 47 columns, expected 49" in str(error)


def test_a_label_outside_zero_one_two_is_refused(tmp_path: Path) -> None:
    rows = fixture_rows()
    items = [raw_item_fields(row) for row in rows]
    items[6][48] = "3"
    error = _refusal(tmp_path, [raw_user_fields(rows[0])], items)
    assert "i.csv, line 7, column item_49: label '3' is not 0" in str(error)


def test_a_search_id_that_is_not_an_integer_is_refused(tmp_path: Path) -> None:
    rows = fixture_rows()
    users = [raw_user_fields(row) for row in rows[:2]]
    users[1][0] = "12x"
    error = _refusal(tmp_path, users, [raw_item_fields(rows[0])])
    assert "u.csv, line 2, column user_1: '12x' is not an integer" in str(error)


def test_a_negative_categorical_is_refused(tmp_path: Path) -> None:
    rows = fixture_rows()
    items = [raw_item_fields(row) for row in rows]
    items[2][40] = "-3"
    error = _refusal(tmp_path, [raw_user_fields(rows[0])], items)
    assert "i.csv, line 3, column item_41: -3 is negative" in str(error)


def test_a_numerical_that_is_not_a_number_is_refused(tmp_path: Path) -> None:
    rows = fixture_rows()
    users = [raw_user_fields(row) for row in rows[:2]]
    users[0][10] = "high"
    error = _refusal(tmp_path, users, [raw_item_fields(rows[0])])
    assert "u.csv, line 1, column user_11: 'high' is not a number" in str(error)


def test_a_country_folder_gives_train_and_test(tmp_path: Path) -> None:
    rows = fixture_rows()
    raw = tmp_path / "raw"
    raw.mkdir()
    for split, part in (("train", rows[:10]), ("test", rows[10:])):
        pages = list(dict.fromkeys(row[0] for row in part))
        users = [raw_user_fields(next(r for r in part if r[0] == page)) for page in pages]
        write_lines(raw / f"es_user_{split}.csv", users)
        write_lines(raw / f"es_item_{split}.csv", [raw_item_fields(row) for row in part])

    reports = process_raw(raw, "ES", tmp_path / "AliExpress_ES")

    assert [r.split for r in reports] == ["train", "test"]
    assert (tmp_path / "AliExpress_ES/train.csv").read_text() == processed_text(rows[:10])
    assert (tmp_path / "AliExpress_ES/test.csv").read_text() == processed_text(rows[10:])


def test_missing_raw_files_are_listed(tmp_path: Path) -> None:
    (tmp_path / "fr_user_train.csv").write_text("")
    with pytest.raises(FileNotFoundError) as caught:
        process_raw(tmp_path, "FR", tmp_path / "out")
    message = str(caught.value)
    assert "fr_item_train.csv" in message
    assert "fr_user_test.csv" in message
    assert "fr_item_test.csv" in message
    assert "fr_user_train.csv" not in message


def test_labels_written_as_floats_are_read_like_upstream(tmp_path: Path) -> None:
    rows = fixture_rows()[:3]
    items = [raw_item_fields(row) for row in rows]
    for item in items:
        item[48] += ".0"
    users = [raw_user_fields(rows[0])]
    process_raw_split(
        write_lines(tmp_path / "u.csv", users),
        write_lines(tmp_path / "i.csv", items),
        tmp_path / "test.csv",
    )
    expected = [row for row in rows if row[0] == rows[0][0]]
    assert (tmp_path / "test.csv").read_text() == processed_text(expected)
