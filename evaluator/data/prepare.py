"""`prepare`: a processed `train.csv` / `test.csv` → a prepared folder (see `prepared.py`).

Memory stays bounded whatever the file's size: a first pass counts the lines and hashes the
file, then pyarrow's streaming CSV reader feeds batches whose arrays are appended to `.npy` files
whose headers already carry the final row count. Everything is built in a temporary folder
beside the target and renamed into place only when complete, so a failure never leaves a half
folder.
"""

from __future__ import annotations

import csv as csvlib
import hashlib
import math
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Any, Final, NoReturn

import numpy as np
import numpy.typing as npt

from evaluator.data.errors import DataFormatError
from evaluator.data.prepared import FORMAT_VERSION, META_FILE, PreparedMeta
from evaluator.data.progress import progress_bar
from evaluator.data.split import DEFAULT_SPLIT_SALT, public_mask
from evaluator.schema import (
    CATEGORICAL_COLUMNS,
    LABEL_COLUMNS,
    N_CATEGORICAL,
    N_NUMERICAL,
    NUMERICAL_COLUMNS,
    PROCESSED_COLUMNS,
)

__all__ = ["DataFormatError", "prepare_csv"]

EXPECTED_HEADER: Final = ",".join(PROCESSED_COLUMNS)
INT32_MAX: Final = int(np.iinfo(np.int32).max)
INT64_MIN: Final = int(np.iinfo(np.int64).min)
INT64_MAX: Final = int(np.iinfo(np.int64).max)
FLOAT32_MAX: Final = float(np.finfo(np.float32).max)
_READ_CHUNK: Final = 1 << 22
_INTEGER: Final = re.compile(r"-?[0-9]+")
# Lines reached after the first line with a problem are not worth scanning for more.
_MAX_SCAN_FOR_ERROR: Final = 10_000_000


def prepare_csv(
    csv: Path,
    out: Path,
    *,
    progress: bool = False,
    salt: str = DEFAULT_SPLIT_SALT,
    block_size: int = 1 << 20,
) -> PreparedMeta:
    """Validate a processed CSV and write its prepared folder at `out`; returns its metadata.

    Raises `DataFormatError` (naming file, line and column) when the file breaks the format; `out`
    is then left as it was. An existing prepared folder at `out` is replaced.
    """
    csv = Path(csv)
    out = Path(out)
    if not csv.is_file():
        raise DataFormatError(csv, "no such file")
    _check_target(out)

    size = csv.stat().st_size
    with progress_bar(progress, total=size, unit="B", desc=f"hash {csv.name}") as bar:
        sha256, n_lines, header = _scan(csv, bar)
    _check_header(csv, header)
    n_rows = n_lines - 1
    if n_rows <= 0:
        raise DataFormatError(csv, "no data rows after the header")

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f"{out.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        with progress_bar(progress, total=n_rows, unit="row", desc=f"prepare {csv.name}") as bar:
            counts = _fill_arrays(csv, tmp, n_rows, salt=salt, block_size=block_size, bar=bar)
        meta = PreparedMeta(
            format_version=FORMAT_VERSION,
            n_rows=n_rows,
            n_public=counts.n_public,
            source_name=csv.name,
            source_sha256=sha256,
            split_salt=salt,
            categorical_max=counts.categorical_max,
            n_clicks=counts.n_clicks,
            n_conversions=counts.n_conversions,
        )
        (tmp / META_FILE).write_text(meta.to_json() + "\n")
        _replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return meta


class _Counts:
    def __init__(self) -> None:
        self.n_public = 0
        self.n_clicks = 0
        self.n_conversions = 0
        self.categorical_max = [0] * N_CATEGORICAL


def _check_target(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / META_FILE).is_file():
        raise FileExistsError(f"{out}: exists, is not empty and is not a prepared folder")


def _replace(tmp: Path, out: Path) -> None:
    """Move the finished folder into place; an old prepared folder is swapped out first."""
    if out.exists():
        old = out.parent / f"{out.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(out)


def _scan(csv: Path, bar: Any) -> tuple[str, int, bytes]:
    """sha256 of the file, its number of lines, and its first line."""
    digest = hashlib.sha256()
    n_newlines = 0
    header = b""
    header_done = False
    last = b"\n"
    with csv.open("rb") as handle:
        while chunk := handle.read(_READ_CHUNK):
            digest.update(chunk)
            n_newlines += chunk.count(b"\n")
            if not header_done:
                end = chunk.find(b"\n")
                header += chunk if end < 0 else chunk[:end]
                header_done = end >= 0 or len(header) > 1 << 20
            last = chunk[-1:]
            bar.update(len(chunk))
    n_lines = n_newlines + (0 if last == b"\n" else 1)
    return digest.hexdigest(), n_lines, header


def _check_header(csv: Path, raw: bytes) -> None:
    text = raw.decode("utf-8", errors="replace").removeprefix("\ufeff").rstrip("\r")
    if text == EXPECTED_HEADER:
        return
    names = text.split(",")
    if len(names) != len(PROCESSED_COLUMNS):
        raise DataFormatError(
            csv,
            f"header has {len(names)} columns, expected {len(PROCESSED_COLUMNS)} "
            f"(search_id, categorical_1..16, numerical_1..63, click, conversion)",
            line=1,
        )
    for position, (found, expected) in enumerate(zip(names, PROCESSED_COLUMNS, strict=True)):
        if found != expected:
            raise DataFormatError(
                csv,
                f"header column {position} is {found!r}, expected {expected!r}",
                line=1,
                column=expected,
            )


class _NpyWriter:
    """Appends rows to a `.npy` file whose final shape is known: plain writes, so the arrays
    never sit in this process's memory (a memory map's dirty pages would)."""

    def __init__(self, path: Path, dtype: type[np.generic], shape: tuple[int, ...]) -> None:
        self.dtype = np.dtype(dtype)
        self.shape = shape
        self.rows = 0
        self.handle = path.open("wb")
        header = {
            "descr": np.lib.format.dtype_to_descr(self.dtype),
            "fortran_order": False,
            "shape": shape,
        }
        np.lib.format.write_array_header_1_0(self.handle, header)

    def append(self, rows: npt.NDArray[Any]) -> None:
        if rows.dtype != self.dtype or rows.shape[1:] != self.shape[1:]:
            raise AssertionError(f"{rows.dtype}{rows.shape} rows for a {self.dtype}{self.shape}")
        self.handle.write(np.ascontiguousarray(rows).tobytes())
        self.rows += rows.shape[0]

    def close(self) -> None:
        self.handle.close()
        if self.rows != self.shape[0]:
            raise AssertionError(f"{self.rows} rows written, {self.shape[0]} announced")


def _fill_arrays(
    csv: Path, folder: Path, n_rows: int, *, salt: str, block_size: int, bar: Any
) -> _Counts:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    writers = {
        "click": _NpyWriter(folder / "click.npy", np.int8, (n_rows,)),
        "conversion": _NpyWriter(folder / "conversion.npy", np.int8, (n_rows,)),
        "categorical": _NpyWriter(folder / "categorical.npy", np.int32, (n_rows, N_CATEGORICAL)),
        "numerical": _NpyWriter(folder / "numerical.npy", np.float32, (n_rows, N_NUMERICAL)),
        "public": _NpyWriter(folder / "public.npy", np.bool_, (n_rows,)),
        "search_id": _NpyWriter(folder / "search_id.npy", np.int64, (n_rows,)),
    }
    try:
        counts = _stream(
            csv, n_rows, writers, salt=salt, block_size=block_size, bar=bar, pa=pa, pacsv=pacsv
        )
    finally:
        for writer in writers.values():
            writer.handle.close()
    for writer in writers.values():
        writer.close()
    return counts


def _stream(
    csv: Path,
    n_rows: int,
    writers: dict[str, _NpyWriter],
    *,
    salt: str,
    block_size: int,
    bar: Any,
    pa: Any,
    pacsv: Any,
) -> _Counts:
    column_types: dict[str, Any] = {name: pa.int64() for name in PROCESSED_COLUMNS}
    column_types.update({name: pa.float64() for name in NUMERICAL_COLUMNS})
    try:
        reader = pacsv.open_csv(
            csv,
            read_options=pacsv.ReadOptions(
                skip_rows=1, column_names=list(PROCESSED_COLUMNS), block_size=block_size
            ),
            parse_options=pacsv.ParseOptions(ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(column_types=column_types),
        )
    except pa.ArrowException as error:
        # open_csv reads the first block already.
        _raise_first_problem(csv, 0, str(error))
    counts = _Counts()
    start = 0
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            break
        except pa.ArrowException as error:
            _raise_first_problem(csv, start, str(error))
        size = batch.num_rows
        if start + size > n_rows:
            raise DataFormatError(
                csv, f"more rows than lines ({n_rows}); quoted line breaks are not allowed"
            )
        columns = {name: batch.column(i) for i, name in enumerate(PROCESSED_COLUMNS)}
        for name, column in columns.items():
            if column.null_count:
                # Empty fields, blank lines and words such as "NA" read as null: let the line
                # by line reader say which.
                row = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
                _raise_first_problem(csv, start + row, f"null value in column {name}")

        ids = columns["search_id"].to_numpy()
        categorical = np.empty((size, N_CATEGORICAL), dtype=np.int32)
        for j, name in enumerate(CATEGORICAL_COLUMNS):
            values = columns[name].to_numpy()
            _check_range(csv, start, name, values, 0, INT32_MAX)
            categorical[:, j] = values
            if values.size:
                counts.categorical_max[j] = max(counts.categorical_max[j], int(values.max()))

        numerical = np.empty((size, N_NUMERICAL), dtype=np.float32)
        for j, name in enumerate(NUMERICAL_COLUMNS):
            floats = columns[name].to_numpy()
            bad = ~np.isfinite(floats) | (np.abs(floats) > FLOAT32_MAX)
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                raise DataFormatError(
                    csv,
                    f"{float(floats[row])!r} is not a finite float32 number",
                    line=start + row + 2,
                    column=name,
                )
            numerical[:, j] = floats

        clicks = columns[LABEL_COLUMNS[0]].to_numpy()
        conversions = columns[LABEL_COLUMNS[1]].to_numpy()
        _check_range(csv, start, LABEL_COLUMNS[0], clicks, 0, 1)
        _check_range(csv, start, LABEL_COLUMNS[1], conversions, 0, 1)
        orphan = conversions > clicks
        if orphan.any():
            row = int(np.flatnonzero(orphan)[0])
            raise DataFormatError(
                csv,
                "conversion = 1 without a click (a conversion never occurs without a click)",
                line=start + row + 2,
                column="conversion",
            )
        public = public_mask(ids, salt)
        writers["search_id"].append(ids.astype(np.int64, copy=False))
        writers["public"].append(public)
        writers["categorical"].append(categorical)
        writers["numerical"].append(numerical)
        writers["click"].append(clicks.astype(np.int8))
        writers["conversion"].append(conversions.astype(np.int8))
        counts.n_public += int(np.count_nonzero(public))
        counts.n_clicks += int(clicks.sum())
        counts.n_conversions += int(conversions.sum())
        bar.update(size)
        start += size

    if start != n_rows:
        raise DataFormatError(csv, f"read {start} rows but the file has {n_rows} lines of data")
    return counts


def _check_range(
    csv: Path, start: int, name: str, values: npt.NDArray[np.int64], low: int, high: int
) -> None:
    bad = (values < low) | (values > high)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        allowed = "0 or 1" if (low, high) == (0, 1) else f"an integer in [{low}, {high}]"
        raise DataFormatError(
            csv, f"{int(values[row])} is not {allowed}", line=start + row + 2, column=name
        )


def _raise_first_problem(csv: Path, first_row: int, arrow_message: str) -> NoReturn:
    """The fast reader stopped; read on line by line from `first_row` to name the problem."""
    with csv.open(newline="", encoding="utf-8", errors="replace") as handle:
        reader = csvlib.reader(handle)
        try:
            next(reader, None)
            for row_index, fields in enumerate(reader):
                if row_index < first_row:
                    continue
                if row_index - first_row > _MAX_SCAN_FOR_ERROR:
                    break
                problem = _row_problem(fields)
                if problem is not None:
                    message, column = problem
                    raise DataFormatError(csv, message, line=reader.line_num, column=column)
        except csvlib.Error as error:
            # Such as a field past the csv module's size limit: not a table of numbers anyway.
            raise DataFormatError(csv, f"unreadable: {error}", line=reader.line_num) from None
    first = arrow_message.splitlines()[0] if arrow_message else "unknown error"
    raise DataFormatError(csv, f"cannot be read after data row {first_row}: {first}")


def _row_problem(fields: list[str]) -> tuple[str, str | None] | None:
    if not fields:
        return "empty line", None
    if len(fields) != len(PROCESSED_COLUMNS):
        return f"{len(fields)} columns, expected {len(PROCESSED_COLUMNS)}", None
    for name, text in zip(PROCESSED_COLUMNS, fields, strict=True):
        if not text.strip():
            return "empty value", name
        if name in NUMERICAL_COLUMNS:
            try:
                # float() takes "1_0" and the fast reader does not.
                if "_" in text:
                    raise ValueError(text)
                value = float(text)
            except ValueError:
                return f"{text!r} is not a number", name
            if not math.isfinite(value):
                return f"{text!r} is not a finite number", name
        else:
            if _INTEGER.fullmatch(text.strip()) is None:
                return f"{text!r} is not an integer", name
            if not INT64_MIN <= int(text) <= INT64_MAX:
                return f"{text} does not fit in 64 bits", name
    return None
