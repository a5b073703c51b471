"""The strict prediction-file parser: accepted forms, and one test per kind of bad input."""

from __future__ import annotations

import gzip
import re
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evaluator.predictions import (
    MAX_EXAMPLES,
    MAX_LINE_BYTES,
    PredictionFileError,
    Predictions,
    parse_prediction_file,
)

# ------------------------------------------------------------------------------- factories


def _write(tmp_path: Path, content: str | bytes, name: str = "pred.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def _csv(rows: Sequence[tuple[object, ...]], header: str = "row_id,ctr,cvr") -> str:
    return header + "\n" + "".join(",".join(str(v) for v in row) + "\n" for row in rows)


def _random_file(n: int, seed: int, fmt: str = "%.6f") -> tuple[str, npt.NDArray[np.float64],
                                                                  npt.NDArray[np.float64]]:
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    ctr, cvr = rng.random(n), rng.random(n)
    lines = [f"{i},{fmt % float(ctr[i])},{fmt % float(cvr[i])}\n" for i in order]
    expected_ctr = np.array([float(fmt % float(v)) for v in ctr])
    expected_cvr = np.array([float(fmt % float(v)) for v in cvr])
    return "row_id,ctr,cvr\n" + "".join(lines), expected_ctr, expected_cvr


def _refused(tmp_path: Path, content: str | bytes, n_rows: int = 3, **kwargs: int
             ) -> PredictionFileError:
    with pytest.raises(PredictionFileError) as info:
        parse_prediction_file(_write(tmp_path, content), n_rows, **kwargs)
    return info.value


def _has(error: PredictionFileError, *, row: int | None, column: str | None, value: str | None,
         message: str) -> bool:
    return any(
        p.row == row and p.column == column and p.value == value and message in p.message
        for p in error.problems
    )


GOOD_ROWS = [(0, "0.5", "0.25"), (1, "0.1", "0.2"), (2, "1", "0")]

# ------------------------------------------------------------------------------ accepted


def test_fixed_width_file_in_any_row_order_is_aligned_by_row_id(tmp_path: Path) -> None:
    text, ctr, cvr = _random_file(2000, 0)
    result = parse_prediction_file(_write(tmp_path, text), 2000)
    np.testing.assert_array_equal(result.ctr, ctr)
    np.testing.assert_array_equal(result.cvr, cvr)
    np.testing.assert_array_equal(result.ctcvr, ctr * cvr)


@pytest.mark.parametrize("fmt", ["%r", "%.17g", "%.10f", "%.3f", "%g"])
def test_values_read_exactly_as_python_float_reads_them(tmp_path: Path, fmt: str) -> None:
    text, ctr, cvr = _random_file(500, 1, fmt)
    result = parse_prediction_file(_write(tmp_path, text), 500)
    np.testing.assert_array_equal(result.ctr, ctr)
    np.testing.assert_array_equal(result.cvr, cvr)


def test_fixed_width_and_general_readers_agree(tmp_path: Path) -> None:
    text, _, _ = _random_file(300, 2, "%.6f")
    fixed = parse_prediction_file(_write(tmp_path, text, "a.csv"), 300)
    # Without the final line end the file takes the general reader.
    general = parse_prediction_file(_write(tmp_path, text.rstrip("\n"), "b.csv"), 300)
    np.testing.assert_array_equal(fixed.ctr, general.ctr)
    np.testing.assert_array_equal(fixed.cvr, general.cvr)


def test_exponent_forms_within_zero_one_are_accepted(tmp_path: Path) -> None:
    result = parse_prediction_file(
        _write(tmp_path, _csv([(0, "1e-05", "2.5E-3"), (1, ".5", "5e-1"), (2, "0.", "1.0")])), 3
    )
    assert result.ctr.tolist() == [1e-05, 0.5, 0.0]
    assert result.cvr.tolist() == [2.5e-3, 0.5, 1.0]


def test_bom_and_crlf_line_ends_are_accepted(tmp_path: Path) -> None:
    content = "\ufeff" + _csv(GOOD_ROWS).replace("\n", "\r\n")
    result = parse_prediction_file(_write(tmp_path, content), 3)
    assert result.ctr.tolist() == [0.5, 0.1, 1.0]


def test_columns_may_come_in_any_order(tmp_path: Path) -> None:
    content = "cvr,row_id,ctr\n0.25,0,0.5\n0.2,1,0.1\n0,2,1\n"
    result = parse_prediction_file(_write(tmp_path, content), 3)
    assert result.ctr.tolist() == [0.5, 0.1, 1.0]
    assert result.columns == ("cvr", "row_id", "ctr")


def test_ctcvr_is_derived_as_ctr_times_cvr(tmp_path: Path) -> None:
    result = parse_prediction_file(_write(tmp_path, _csv(GOOD_ROWS)), 3)
    assert result.ctcvr.tolist() == [0.5 * 0.25, 0.1 * 0.2, 0.0]


def test_cvr_is_derived_as_ctcvr_over_ctr_clipped_and_zero_where_ctr_is_zero(
    tmp_path: Path,
) -> None:
    content = _csv([(0, "0.5", "0.25"), (1, "0", "0.3"), (2, "0.1", "0.4")],
                   header="row_id,ctr,ctcvr")
    result = parse_prediction_file(_write(tmp_path, content), 3)
    assert result.cvr.tolist() == [0.5, 0.0, 1.0]
    assert result.ctcvr.tolist() == [0.25, 0.3, 0.4]


def test_all_three_columns_are_kept_as_given(tmp_path: Path) -> None:
    content = _csv([(0, "0.5", "0.25", "0.9"), (1, "0.1", "0.2", "0"), (2, "1", "0", "0.5")],
                   header="row_id,ctr,cvr,ctcvr")
    result = parse_prediction_file(_write(tmp_path, content), 3)
    assert result.ctcvr.tolist() == [0.9, 0.0, 0.5]


def test_gzip_file_is_detected_by_its_bytes_not_its_name(tmp_path: Path) -> None:
    path = _write(tmp_path, gzip.compress(_csv(GOOD_ROWS).encode()), "pred.txt")
    assert isinstance(parse_prediction_file(path, 3), Predictions)


def test_concatenated_gzip_members_are_read_as_one_file(tmp_path: Path) -> None:
    text = _csv(GOOD_ROWS).encode()
    content = gzip.compress(text[:20]) + gzip.compress(text[20:])
    result = parse_prediction_file(_write(tmp_path, content), 3)
    assert result.ctr.tolist() == [0.5, 0.1, 1.0]


def test_parquet_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "pred.bin"
    table = pa.table({"row_id": [2, 0, 1], "ctr": [1.0, 0.5, 0.1], "cvr": [0.0, 0.25, 0.2]})
    pq.write_table(table, path)
    result = parse_prediction_file(path, 3)
    assert result.ctr.tolist() == [0.5, 0.1, 1.0]
    assert result.cvr.tolist() == [0.25, 0.2, 0.0]


# ------------------------------------------------------------------------ refused: values


@pytest.mark.parametrize(
    "value", ["nan", "NaN", "inf", "Infinity", "1_0", "１", "0.5x", " 0.5", "0.5 ", "0x1p-2",
              '"0.5"', "+0.5", "0.5.5", "e5"]
)
def test_value_that_is_not_a_plain_decimal_is_refused_with_line_column_and_value(
    tmp_path: Path, value: str
) -> None:
    error = _refused(tmp_path, _csv([(0, "0.5", "0.25"), (1, value, "0.2"), (2, "1", "0")]))
    assert _has(error, row=3, column="ctr", value=value, message="not a plain decimal")
    assert "line 3" in error.summary and "column ctr" in error.summary


@pytest.mark.parametrize("value", ["1e999", "1.5", "2", "1.0000001"])
def test_value_above_one_or_infinite_is_refused(tmp_path: Path, value: str) -> None:
    error = _refused(tmp_path, _csv([(0, "0.5", value), (1, "0.1", "0.2"), (2, "1", "0")]))
    assert _has(error, row=2, column="cvr", value=value, message="outside [0, 1]")


@pytest.mark.parametrize("value", ["-0.1", "-0", "-1e-5"])
def test_negative_value_is_refused(tmp_path: Path, value: str) -> None:
    error = _refused(tmp_path, _csv([(0, "0.5", "0.25"), (1, "0.1", "0.2"), (2, value, "0")]))
    assert _has(error, row=4, column="ctr", value=value, message="negative")


def test_empty_cell_is_refused(tmp_path: Path) -> None:
    error = _refused(tmp_path, _csv([(0, "0.5", ""), (1, "0.1", "0.2"), (2, "1", "0")]))
    assert _has(error, row=2, column="cvr", value="", message="empty cell")


def test_many_bad_values_are_counted_with_the_first_few_as_examples(tmp_path: Path) -> None:
    rows = [(i, "nan", "0.5") for i in range(50)]
    error = _refused(tmp_path, _csv(rows), n_rows=50)
    examples = [p for p in error.problems if p.column == "ctr" and p.row is not None]
    assert [p.row for p in examples] == [2, 3, 4, 5, 6][:MAX_EXAMPLES]
    assert any(p.count == 50 and p.column == "ctr" for p in error.problems)
    assert "50 × not a plain decimal" in error.summary and "and 45 more" in error.summary


def test_every_kind_of_problem_is_listed_at_once(tmp_path: Path) -> None:
    content = "row_id,ctr,cvr\n0,nan,0.5\n0,0.5,1.5\n7,0.5\n"
    error = _refused(tmp_path, content)
    messages = error.summary
    for expected in ["not a plain decimal", "outside [0, 1]", "wrong number of fields",
                     "duplicate row_id", "missing row_id"]:
        assert expected in messages


# ----------------------------------------------------------------------- refused: row ids


@pytest.mark.parametrize("row_id", ["NA", "007", "1.0", "-1", "+1", " 1", "1e0", ""])
def test_row_id_that_is_not_a_plain_integer_is_refused(tmp_path: Path, row_id: str) -> None:
    error = _refused(tmp_path, _csv([(0, "0.5", "0.25"), (row_id, "0.1", "0.2"), (2, "1", "0")]))
    message = "empty cell" if row_id == "" else "not a plain non-negative integer"
    assert _has(error, row=3, column="row_id", value=row_id, message=message)


def test_duplicate_row_id_names_both_lines(tmp_path: Path) -> None:
    error = _refused(tmp_path, _csv([(0, "0.5", "0.25"), (0, "0.1", "0.2"), (2, "1", "0")]))
    assert _has(error, row=3, column="row_id", value="0 (also on line 2)",
                message="duplicate row_id")
    assert _has(error, row=None, column="row_id", value="1", message="missing row_id")


def test_unknown_row_id_is_refused(tmp_path: Path) -> None:
    error = _refused(tmp_path, _csv([(0, "0.5", "0.25"), (3, "0.1", "0.2"), (2, "1", "0")]))
    assert _has(error, row=3, column="row_id", value="3", message="unknown row_id")


def test_missing_rows_are_counted(tmp_path: Path) -> None:
    error = _refused(tmp_path, _csv(GOOD_ROWS), n_rows=10)
    assert any(p.count == 7 and "missing row_id" in p.message for p in error.problems)
    assert "the file has 3 data lines; expected 10" in error.summary


# ------------------------------------------------------------------ refused: structure


@pytest.mark.parametrize(
    "header", ["row_id,ctr", "id,ctr,cvr", "row_id,ctr,cvr,extra", "row_id,ctr,ctr",
               "row_id, ctr, cvr", "ROW_ID,CTR,CVR"]
)
def test_wrong_header_is_refused(tmp_path: Path, header: str) -> None:
    error = _refused(tmp_path, header + "\n0,0.5,0.5\n")
    assert _has(error, row=1, column=None, value=header, message="wrong header")


def test_row_with_wrong_number_of_fields_is_refused(tmp_path: Path) -> None:
    content = "row_id,ctr,cvr\n0,0.5,0.25\n1,0.1\n2,1,0,7\n"
    error = _refused(tmp_path, content)
    assert _has(error, row=3, column=None, value="1,0.1", message="wrong number of fields")
    assert _has(error, row=4, column=None, value="2,1,0,7", message="wrong number of fields")


def test_empty_line_is_refused(tmp_path: Path) -> None:
    error = _refused(tmp_path, _csv(GOOD_ROWS) + "\n")
    assert _has(error, row=5, column=None, value=None, message="empty line")


def test_nul_byte_is_refused(tmp_path: Path) -> None:
    error = _refused(tmp_path, b"row_id,ctr,cvr\n0,0.5,0.25\n1,0.1\x00,0.2\n2,1,0\n")
    assert _has(error, row=3, column=None, value=None, message="NUL byte")
    assert _has(error, row=3, column="ctr", value="0.1\x00", message="not a plain decimal")


def test_invalid_utf8_is_refused(tmp_path: Path) -> None:
    error = _refused(tmp_path, b"row_id,ctr,cvr\n0,0.5,0.25\n1,\xff\xfe,0.2\n2,1,0\n")
    assert any("not valid UTF-8" in p.message and p.row == 3 for p in error.problems)


def test_bare_carriage_return_is_refused(tmp_path: Path) -> None:
    error = _refused(tmp_path, "row_id,ctr,cvr\n0,0.5,0.25\r1,0.1,0.2\n2,1,0\n")
    assert any("carriage return" in p.message and p.row == 2 for p in error.problems)


def test_over_long_line_is_refused_and_the_rest_still_checked(tmp_path: Path) -> None:
    long_line = "1," + "9" * 5000 + ",0.2"
    content = "row_id,ctr,cvr\n0,0.5,0.25\n" + long_line + "\n2,nan,0\n"
    error = _refused(tmp_path, content)
    assert _has(error, row=3, column=None, value=f"{len(long_line)} bytes",
                message=f"longer than {MAX_LINE_BYTES} bytes")
    assert _has(error, row=4, column="ctr", value="nan", message="not a plain decimal")


def test_header_without_line_end_longer_than_a_line_is_refused(tmp_path: Path) -> None:
    error = _refused(tmp_path, "x" * (MAX_LINE_BYTES + 10))
    assert "line 1 (the header) is longer" in error.summary


def test_file_larger_than_the_cap_is_refused_before_reading(tmp_path: Path) -> None:
    error = _refused(tmp_path, _csv(GOOD_ROWS), max_bytes=20)
    assert "at most 20 are allowed" in error.summary


# ---------------------------------------------------------------------- refused: gzip


def test_truncated_gzip_is_refused(tmp_path: Path) -> None:
    packed = gzip.compress(_csv(GOOD_ROWS).encode())
    error = _refused(tmp_path, packed[: len(packed) - 12])
    assert "truncated gzip" in error.summary


def test_corrupt_gzip_is_refused(tmp_path: Path) -> None:
    packed = bytearray(gzip.compress(_csv(GOOD_ROWS).encode() * 5))
    packed[20:30] = b"\xff" * 10
    error = _refused(tmp_path, bytes(packed))
    assert "gzip" in error.summary


def test_gzip_bomb_stops_at_the_cap(tmp_path: Path) -> None:
    # 64 MiB of zeros packs into ~64 KiB; the cap for 3 rows is about 1 MiB.
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = b"0" * (1 << 20)
    packed = b"".join(packer.compress(zeros) for _ in range(64)) + packer.flush()
    error = _refused(tmp_path, packed)
    assert "decompresses to more than" in error.summary and "gzip bomb" in error.summary


# -------------------------------------------------------------------- refused: Parquet


def _parquet(tmp_path: Path, table: pa.Table) -> Path:
    path = tmp_path / "pred.parquet"
    pq.write_table(table, path)
    return path


def test_parquet_with_nulls_is_refused_naming_the_row(tmp_path: Path) -> None:
    table = pa.table({"row_id": [0, 1, 2], "ctr": [0.5, None, 0.1], "cvr": [0.1, 0.2, 0.3]})
    with pytest.raises(PredictionFileError) as info:
        parse_prediction_file(_parquet(tmp_path, table), 3)
    assert _has(info.value, row=2, column="ctr", value=None, message="missing value")


def test_parquet_with_out_of_range_values_is_refused(tmp_path: Path) -> None:
    table = pa.table({"row_id": [0, 1, 2], "ctr": [0.5, float("nan"), 1.5],
                      "cvr": [0.1, 0.2, -0.0]})
    with pytest.raises(PredictionFileError) as info:
        parse_prediction_file(_parquet(tmp_path, table), 3)
    assert _has(info.value, row=2, column="ctr", value="nan", message="outside [0, 1]")
    assert _has(info.value, row=3, column="ctr", value="1.5", message="outside [0, 1]")
    assert _has(info.value, row=3, column="cvr", value="-0.0", message="outside [0, 1]")


def test_parquet_with_string_columns_is_refused(tmp_path: Path) -> None:
    table = pa.table({"row_id": ["0", "1", "2"], "ctr": [0.5, 0.1, 0.1], "cvr": ["a", "b", "c"]})
    with pytest.raises(PredictionFileError) as info:
        parse_prediction_file(_parquet(tmp_path, table), 3)
    assert _has(info.value, row=None, column="row_id", value=None, message="integer column")
    assert _has(info.value, row=None, column="cvr", value=None, message="floating-point")


def test_parquet_with_wrong_row_count_or_columns_is_refused(tmp_path: Path) -> None:
    table = pa.table({"row_id": [0, 1], "ctr": [0.5, 0.1], "cvr": [0.1, 0.2]})
    with pytest.raises(PredictionFileError, match="has 2 rows; expected 3"):
        parse_prediction_file(_parquet(tmp_path, table), 3)
    table = pa.table({"row_id": [0, 1, 2], "ctr": [0.5, 0.1, 0.3]})
    with pytest.raises(PredictionFileError, match="wrong columns row_id,ctr"):
        parse_prediction_file(_parquet(tmp_path, table), 3)


def test_parquet_duplicate_row_id_is_refused(tmp_path: Path) -> None:
    table = pa.table({"row_id": [0, 0, 2], "ctr": [0.5, 0.1, 0.1], "cvr": [0.1, 0.2, 0.3]})
    with pytest.raises(PredictionFileError) as info:
        parse_prediction_file(_parquet(tmp_path, table), 3)
    assert _has(info.value, row=2, column="row_id", value="0 (also on row 1)",
                message="duplicate row_id")


def test_truncated_parquet_is_refused(tmp_path: Path) -> None:
    table = pa.table({"row_id": [0, 1, 2], "ctr": [0.5, 0.1, 0.1], "cvr": [0.1, 0.2, 0.3]})
    path = _parquet(tmp_path, table)
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(PredictionFileError, match="Parquet"):
        parse_prediction_file(path, 3)


# ------------------------------------------------------------------ fixed-width reader


def _fast(content: str, n_rows: int) -> object:
    from evaluator.predictions import _fast_fixed_width, _parse_header

    data = content.encode()
    header_end = data.index(b"\n")
    names = _parse_header(data[:header_end].removesuffix(b"\r"))
    buf = np.frombuffer(data, dtype=np.uint8)
    return _fast_fixed_width(buf, header_end + 1, names, n_rows)


def test_fixed_width_reader_takes_the_common_layout_and_crlf() -> None:
    text, _, _ = _random_file(100, 3)
    assert _fast(text, 100) is not None
    assert _fast(text.replace("\n", "\r\n"), 100) is not None


def test_fixed_width_reader_leaves_anything_unusual_to_the_general_reader() -> None:
    base = "row_id,ctr,cvr\n0,0.500000,0.250000\n1,0.100000,0.200000\n"
    assert _fast(base, 2) is not None
    assert _fast(base.replace("1,0.1", "01,0.1"), 2) is None  # leading zero in an id
    assert _fast(base.replace("0.200000", "1.200000"), 2) is None  # above one
    assert _fast(base.replace("0.200000", "0.2000 0"), 2) is None  # not a digit
    assert _fast(base.replace("0.200000", "0,200000"), 2) is None  # comma for the dot
    assert _fast(base.replace("0.200000", "0.20000"), 2) is None  # width differs
    assert _fast(base, 3) is None  # row count differs


def test_one_and_zero_written_with_fixed_width_read_as_one_and_zero(tmp_path: Path) -> None:
    content = "row_id,ctr,cvr\n2,1.000000,0.000000\n0,0.500000,0.250000\n1,0.100000,0.200000\n"
    result = parse_prediction_file(_write(tmp_path, content), 3)
    assert result.ctr.tolist() == [0.5, 0.1, 1.0]
    assert result.cvr.tolist() == [0.25, 0.2, 0.0]


def test_bad_value_in_a_fixed_width_file_is_reported_by_line(tmp_path: Path) -> None:
    text, _, _ = _random_file(20, 4)
    lines = text.splitlines(keepends=True)
    row_id = lines[7].split(",")[0]
    lines[7] = f"{row_id},1.500000,0.100000\n"
    error = _refused(tmp_path, "".join(lines), n_rows=20)
    assert _has(error, row=8, column="ctr", value="1.500000", message="outside [0, 1]")


def test_line_longer_than_a_whole_read_block_is_refused_and_the_rest_still_checked(
    tmp_path: Path,
) -> None:
    long_line = "1," + "9" * (6 << 20) + ",0.2"
    content = "row_id,ctr,cvr\n0,0.5,0.25\n" + long_line + "\n2,nan,0\n"
    error = _refused(tmp_path, content, max_bytes=8 << 20)
    assert _has(error, row=3, column=None, value=f"{len(long_line)} bytes",
                message=f"longer than {MAX_LINE_BYTES} bytes")
    assert _has(error, row=4, column="ctr", value="nan", message="not a plain decimal")


# ------------------------------------------------------------- vectorised string checks

_FIELD_CHARS = st.text(alphabet="0123456789.eE+-x ,１", max_size=8)


@settings(max_examples=300, deadline=None)
@given(st.lists(_FIELD_CHARS, max_size=30))
def test_vectorised_decimal_check_agrees_with_the_documented_pattern(values: list[str]) -> None:
    from evaluator.predictions import _DECIMAL_RE, _plain_decimals

    expected = [re.fullmatch(_DECIMAL_RE.strip("^$"), v) is not None for v in values]
    for kind in (pa.string(), pa.large_binary()):
        column = pa.array([v.encode() for v in values], pa.binary()).cast(kind)
        assert _plain_decimals(column).tolist() == expected


@settings(max_examples=300, deadline=None)
@given(st.lists(_FIELD_CHARS, max_size=30))
def test_vectorised_id_check_agrees_with_the_documented_pattern(values: list[str]) -> None:
    from evaluator.predictions import _ROW_ID_RE, _plain_ids

    expected = [re.fullmatch(_ROW_ID_RE.strip("^$"), v) is not None for v in values]
    assert _plain_ids(pa.array(values, pa.string())).tolist() == expected, values


@pytest.mark.parametrize("content", [b"", b"\xef\xbb\xbf"])
def test_empty_file_is_refused_as_empty(tmp_path: Path, content: bytes) -> None:
    assert "the file is empty" in _refused(tmp_path, content).summary


def test_header_without_rows_is_refused_counting_the_missing_rows(tmp_path: Path) -> None:
    error = _refused(tmp_path, "row_id,ctr,cvr\n")
    assert "the file has 0 data lines; expected 3" in error.summary
    missing = [p.value for p in error.problems if "missing row_id" in p.message]
    assert missing == ["0", "1", "2"]
