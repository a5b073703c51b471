"""Small factories for the data-preparation tests: processed rows, raw files, synthetic CSVs."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from evaluator.data.synth import write_synthetic
from evaluator.schema import PROCESSED_COLUMNS

HEADER = ",".join(PROCESSED_COLUMNS)
FIXTURE = Path(__file__).resolve().parents[3].parent / "shared/fixtures/aliexpress_test_sample.csv"

Row = list[str]


def fixture_path() -> Path:
    if not FIXTURE.is_file():
        message = f"the shared fixture is not at {FIXTURE} (../shared beside the checkout)"
        if os.environ.get("CI"):
            pytest.fail(message)
        # Also called at import time, to build parametrised cases: skip the module then.
        pytest.skip(message, allow_module_level=True)
    return FIXTURE


def fixture_rows() -> list[Row]:
    """The 20 real processed rows, as text fields."""
    lines = fixture_path().read_text().splitlines()
    assert lines[0] == HEADER
    return [line.split(",") for line in lines[1:]]


def processed_text(rows: Sequence[Row]) -> str:
    return HEADER + "\n" + "".join(",".join(row) + "\n" for row in rows)


def write_processed(path: Path, rows: Sequence[Row]) -> Path:
    path.write_text(processed_text(rows))
    return path


def synthetic_csv(folder: Path, rows: int, *, seed: int = 0, country: str = "NL") -> Path:
    """A synthetic processed test.csv with `rows` rows."""
    write_synthetic(folder, [country], train_rows=0, test_rows=rows, seed=seed)
    return folder / f"AliExpress_{country}" / "test.csv"


# Raw column numbers (1-based) of each processed column, as in the upstream script.
USER_CATEGORICAL = (2, 3, 4, 5, 6, 7, 8, 32, 33)
ITEM_CATEGORICAL = (19, 34, 35, 36, 40, 41, 42)
USER_NUMERICAL = tuple(range(9, 32))
ITEM_NUMERICAL = tuple(i for i in range(2, 49) if i not in ITEM_CATEGORICAL)
LABEL_OF = {("0", "0"): "0", ("1", "0"): "1", ("1", "1"): "2"}


def raw_user_fields(row: Row) -> Row:
    """The 33 user-file fields that a processed row came from (user_1 = search id)."""
    fields = ["0"] * 33
    fields[0] = row[0]
    for k, column in enumerate(USER_CATEGORICAL):
        fields[column - 1] = row[1 + k]
    for k, column in enumerate(USER_NUMERICAL):
        fields[column - 1] = row[17 + k]
    return fields


def raw_item_fields(row: Row) -> Row:
    """The 49 item-file fields that a processed row came from (item_49 = label)."""
    fields = ["0"] * 49
    fields[0] = row[0]
    for k, column in enumerate(ITEM_CATEGORICAL):
        fields[column - 1] = row[1 + len(USER_CATEGORICAL) + k]
    for k, column in enumerate(ITEM_NUMERICAL):
        fields[column - 1] = row[17 + len(USER_NUMERICAL) + k]
    fields[48] = LABEL_OF[(row[80], row[81])]
    return fields


def write_lines(path: Path, rows: Sequence[Row]) -> Path:
    path.write_text("".join(",".join(row) + "\n" for row in rows))
    return path
