"""`process-raw`: the organisers' raw files → processed `train.csv` / `test.csv`.

Faithful to the challenge's `process_aliexpress.py` (notes §1): for each of train and test,
`pd.merge(user, item, left_on="user_1", right_on="item_1", how="inner")`, the same column choice
and names, and labels 0 → (0, 0), 1 → (1, 0), 2 → (1, 1). The row order is therefore the merge's:
**user-file order, and within one user row its items in item-file order**; items whose search id
has no user row are dropped, and a user row repeated in the user file repeats its items. That
order defines `row_id`.

Unlike the upstream script, the raw files are never loaded whole: the user file (one row per
search) is held as text, the item file is read twice line by line, first to validate it and to
note where each joined row starts, then to write the rows in merge order. Values are copied as
written in the raw files (integers normalised, e.g. `007` → `7`); upstream re-formats numbers
through pandas' float parser, which can change the last digit of a float64 (`0.088` →
`0.08800000000000001`) but never its float32 value.
"""

from __future__ import annotations

import math
import operator
import os
import uuid
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt

from evaluator.data.errors import DataFormatError
from evaluator.data.progress import progress_bar
from evaluator.schema import PROCESSED_COLUMNS, Country, parse_country

__all__ = ["RawSplitReport", "process_raw", "process_raw_split", "raw_paths"]

N_USER_COLUMNS: Final = 33
N_ITEM_COLUMNS: Final = 49
# 1-based raw column numbers, as in the upstream script.
USER_CATEGORICAL: Final = (2, 3, 4, 5, 6, 7, 8, 32, 33)
ITEM_CATEGORICAL: Final = (19, 34, 35, 36, 40, 41, 42)
USER_NUMERICAL: Final = tuple(range(9, 32))
ITEM_NUMERICAL: Final = tuple(i for i in range(2, 49) if i not in ITEM_CATEGORICAL)
LABEL_COLUMN: Final = 49
_LABELS: Final = {0.0: "0,0", 1.0: "1,0", 2.0: "1,1"}
_LABEL_TEXT: Final = {"0": "0,0", "1": "1,0", "2": "1,1"}
_ITEM_CATEGORICAL_FIELDS: Final = operator.itemgetter(*(i - 1 for i in ITEM_CATEGORICAL))
_ITEM_NUMERICAL_FIELDS: Final = operator.itemgetter(*(i - 1 for i in ITEM_NUMERICAL))

RawSplit = Literal["train", "test"]
RAW_SPLITS: Final[tuple[RawSplit, ...]] = ("train", "test")


@dataclass(frozen=True)
class RawSplitReport:
    split: RawSplit
    rows_written: int
    user_rows: int
    item_rows: int
    items_without_user: int
    path: Path


def raw_paths(raw: Path, country: Country, split: RawSplit) -> tuple[Path, Path]:
    """The (user, item) files of one split."""
    cc = country.lower()
    return raw / f"{cc}_user_{split}.csv", raw / f"{cc}_item_{split}.csv"


def process_raw(
    raw: Path, country: Country | str, out: Path, *, progress: bool = False
) -> list[RawSplitReport]:
    """Write `out/train.csv` and `out/test.csv` from the raw files of `country` in `raw`."""
    code = parse_country(str(country))
    raw = Path(raw)
    missing = [
        str(path)
        for split in RAW_SPLITS
        for path in raw_paths(raw, code, split)
        if not path.is_file()
    ]
    if missing:
        raise FileNotFoundError(
            f"raw files missing (unzip the organisers' archives first): {', '.join(missing)}"
        )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    reports = []
    for split in RAW_SPLITS:
        user, item = raw_paths(raw, code, split)
        reports.append(
            process_raw_split(user, item, out / f"{split}.csv", split=split, progress=progress)
        )
    return reports


def process_raw_split(
    user_file: Path,
    item_file: Path,
    out_file: Path,
    *,
    split: RawSplit = "test",
    progress: bool = False,
) -> RawSplitReport:
    """Join one user file and one item file into one processed CSV, written atomically."""
    users, by_search = _read_users(Path(user_file))
    item_file = Path(item_file)
    size = item_file.stat().st_size
    with progress_bar(progress, total=size, unit="B", desc=f"check {item_file.name}") as bar:
        user_index, offsets, item_rows, matched = _index_items(item_file, by_search, bar)
    order = np.lexsort((offsets, user_index))
    out_file = Path(out_file)
    tmp = out_file.parent / f".{out_file.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        with tmp.open("w", encoding="ascii", newline="\n") as sink:
            sink.write(",".join(PROCESSED_COLUMNS) + "\n")
            with progress_bar(
                progress, total=len(order), unit="row", desc=f"write {out_file.name}"
            ) as bar:
                for u, line in _lines_in_order(item_file, user_index[order], offsets[order]):
                    sink.write(_output_row(users[u], line))
                    bar.update(1)
        tmp.replace(out_file)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return RawSplitReport(
        split=split,
        rows_written=len(order),
        user_rows=len(users),
        item_rows=item_rows,
        items_without_user=item_rows - matched,
        path=out_file,
    )


@dataclass(frozen=True)
class _User:
    search_id: str
    categorical: str
    numerical: str


def _read_users(path: Path) -> tuple[list[_User], dict[int, list[int]]]:
    users: list[_User] = []
    by_search: dict[int, list[int]] = {}
    with path.open("rb") as handle:
        for number, raw_line in enumerate(handle, start=1):
            fields = _fields(path, number, raw_line, N_USER_COLUMNS, "user")
            if fields is None:
                continue
            search = _integer(path, number, "user_1", fields[0])
            categorical = [
                str(_integer(path, number, f"user_{i}", fields[i - 1], minimum=0))
                for i in USER_CATEGORICAL
            ]
            for i in USER_NUMERICAL:
                _number(path, number, f"user_{i}", fields[i - 1])
            by_search.setdefault(search, []).append(len(users))
            users.append(
                _User(
                    search_id=str(search),
                    categorical=",".join(categorical),
                    numerical=",".join(fields[i - 1] for i in USER_NUMERICAL),
                )
            )
    return users, by_search


def _index_items(
    path: Path, by_search: dict[int, list[int]], bar: Any
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], int, int]:
    """Validate every item line; note (user row, byte offset) for each joined row."""
    user_index = array("q")
    offsets = array("q")
    offset = 0
    number = 0
    matched = 0
    with path.open("rb") as handle:
        for number, raw_line in enumerate(handle, start=1):
            fields = _fields(path, number, raw_line, N_ITEM_COLUMNS, "item")
            if fields is not None:
                search = _check_item(path, number, fields)
                matches = by_search.get(search, ())
                matched += bool(matches)
                for u in matches:
                    user_index.append(u)
                    offsets.append(offset)
            offset += len(raw_line)
            bar.update(len(raw_line))
    return (
        np.frombuffer(user_index, dtype=np.int64),
        np.frombuffer(offsets, dtype=np.int64),
        number,
        matched,
    )


def _check_item(path: Path, number: int, fields: list[str]) -> int:
    """The item's search id, after checking its values (fast when they are fine)."""
    try:
        search = int(fields[0])
        fine = (
            min(map(int, _ITEM_CATEGORICAL_FIELDS(fields))) >= 0
            and all(map(math.isfinite, map(float, _ITEM_NUMERICAL_FIELDS(fields))))
            and fields[LABEL_COLUMN - 1] in _LABEL_TEXT
        )
    except ValueError:
        fine = False
    if fine:
        return search
    # Name the first bad column; labels such as "1.0" pass here, as they do upstream.
    search = _integer(path, number, "item_1", fields[0])
    for i in ITEM_CATEGORICAL:
        _integer(path, number, f"item_{i}", fields[i - 1], minimum=0)
    for i in ITEM_NUMERICAL:
        _number(path, number, f"item_{i}", fields[i - 1])
    label = fields[LABEL_COLUMN - 1]
    if _label_value(label) is None:
        raise DataFormatError(
            path,
            f"label {label!r} is not 0 (impression), 1 (click) or 2 (purchase)",
            line=number,
            column="item_49",
        )
    return search


def _lines_in_order(
    path: Path, user_index: npt.NDArray[np.int64], offsets: npt.NDArray[np.int64]
) -> Iterator[tuple[int, str]]:
    """The item lines at `offsets`, in that order, each with its user row."""
    with path.open("rb") as handle:
        if offsets.size == 0 or bool(np.all(np.diff(offsets) > 0)):
            # The usual case (items grouped by search in user order): one sequential read.
            position = 0
            k = 0
            for raw_line in handle:
                if k < offsets.size and position == offsets[k]:
                    yield int(user_index[k]), raw_line.decode("ascii")
                    k += 1
                position += len(raw_line)
            return
        for u, offset in zip(user_index.tolist(), offsets.tolist(), strict=True):
            handle.seek(offset)
            yield u, handle.readline().decode("ascii")


def _output_row(user: _User, line: str) -> str:
    fields = line.rstrip("\r\n").split(",")
    item_categorical = ",".join(map(str, map(int, _ITEM_CATEGORICAL_FIELDS(fields))))
    item_numerical = ",".join(_ITEM_NUMERICAL_FIELDS(fields))
    label_text = fields[LABEL_COLUMN - 1]
    label = _LABEL_TEXT.get(label_text) or _LABELS[_label_value(label_text)]  # type: ignore[index]
    return (
        f"{user.search_id},{user.categorical},{item_categorical},"
        f"{user.numerical},{item_numerical},{label}\n"
    )


def _fields(path: Path, number: int, raw_line: bytes, expected: int, kind: str) -> list[str] | None:
    try:
        text = raw_line.decode("ascii")
    except UnicodeDecodeError:
        raise DataFormatError(path, "not plain ASCII text", line=number) from None
    text = text.rstrip("\r\n")
    if not text.strip():
        return None  # pandas skips blank lines too
    fields = text.split(",")
    if len(fields) != expected:
        raise DataFormatError(
            path,
            f"{len(fields)} columns, expected {expected} (a raw {kind} file, no header)",
            line=number,
        )
    return fields


def _integer(path: Path, number: int, column: str, text: str, *, minimum: int | None = None) -> int:
    try:
        value = int(text)
    except ValueError:
        raise DataFormatError(
            path, f"{text!r} is not an integer", line=number, column=column
        ) from None
    if minimum is not None and value < minimum:
        raise DataFormatError(
            path,
            f"{value} is negative; expected an integer >= {minimum}",
            line=number,
            column=column,
        )
    return value


def _number(path: Path, number: int, column: str, text: str) -> None:
    try:
        value = float(text)
    except ValueError:
        raise DataFormatError(
            path, f"{text!r} is not a number", line=number, column=column
        ) from None
    if not math.isfinite(value):
        raise DataFormatError(path, f"{text!r} is not a finite number", line=number, column=column)


def _label_value(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value in _LABELS else None
