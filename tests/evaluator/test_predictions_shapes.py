"""The fast readers against the general one and against sklearn, shape by shape.

Every accepted shape must take a fast path (else these tests would not test it) and give
exactly the values of the general reader, hence AUCs equal to sklearn's; every refused file
must be refused with the general reader's very problems and summary."""

from __future__ import annotations

import gzip
import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

import evaluator.predictions as predictions
from evaluator.metrics import auc_with_ci
from evaluator.predictions import (
    PredictionFileError,
    Predictions,
    parse_prediction_csv,
    parse_prediction_file,
)

FloatArray = npt.NDArray[np.float64]

# ------------------------------------------------------------------------------- factories


def _probabilities(n: int, seed: int) -> tuple[FloatArray, FloatArray, npt.NDArray[np.bool_]]:
    """CTR-like scores (small, with ties and a few below 1e-4, so exponents appear in repr)
    and labels that depend on them."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=n)
    ctr = 1.0 / (1.0 + np.exp(-(-4.6 + 1.8 * z)))
    ctr[rng.random(n) < 0.05] = 0.0
    ctr[rng.random(n) < 0.01] = 1.0
    cvr = np.round(rng.random(n), 3)
    labels = rng.random(n) < ctr + 0.02
    labels[:2] = [False, True]
    return ctr, cvr, labels


def _text(ctr: FloatArray, cvr: FloatArray, fmt: Callable[[float], str],
          order: npt.NDArray[np.int64] | None = None, newline: str = "\n") -> str:
    rows = np.arange(ctr.size) if order is None else order
    body = newline.join(f"{i},{fmt(float(ctr[i]))},{fmt(float(cvr[i]))}" for i in rows)
    return "row_id,ctr,cvr" + newline + body + newline


FORMATS: dict[str, Callable[[float], str]] = {
    "repr": repr,
    "%.6f": lambda v: f"{v:.6f}",
    "%.17g": lambda v: f"{v:.17g}",
    "%.18e": lambda v: f"{v:.18e}",
    "%g": lambda v: f"{v:g}",
    "%.3E": lambda v: f"{v:.3E}",
}


def _general(raw: bytes, n_rows: int) -> Predictions:
    """The general reader alone, as the reference."""
    offset = 3 if raw.startswith(b"\xef\xbb\xbf") else 0
    header_end = raw.find(b"\n", offset)
    header = raw[offset:header_end] if header_end >= 0 else raw[offset:]
    names = predictions._parse_header(header.removesuffix(b"\r"))
    body_start = header_end + 1 if header_end >= 0 else len(raw)
    buf = np.frombuffer(raw, dtype=np.uint8)
    problems = predictions._Problems()
    parsed = predictions._general_csv(raw, buf, body_start, names, problems)
    return predictions._assemble(names, predictions._aligned_or_raise(parsed, n_rows, problems))


def _fast(raw: bytes, n_rows: int) -> dict[str, FloatArray] | None:
    header_end = raw.index(b"\n")
    names = predictions._parse_header(raw[:header_end].removesuffix(b"\r"))
    return predictions._fast_csv(np.frombuffer(raw, dtype=np.uint8), header_end + 1, names,
                                 n_rows)


def _outcome(parse: Callable[[], Predictions]) -> tuple[str, object]:
    """What a parse gives, comparable across readers: the values, or the refusal."""
    try:
        result = parse()
    except PredictionFileError as exc:
        return "refused", (exc.summary, exc.problems)
    return "accepted", (result.ctr.tolist(), result.cvr.tolist(), result.ctcvr.tolist(),
                        result.columns)


def _assert_aucs_equal_sklearn(result: Predictions, ctr: FloatArray, cvr: FloatArray,
                               labels: npt.NDArray[np.bool_], fmt: Callable[[float], str]) -> None:
    written_ctr = np.array([float(fmt(float(v))) for v in ctr])
    written_cvr = np.array([float(fmt(float(v))) for v in cvr])
    np.testing.assert_array_equal(result.ctr, written_ctr)
    np.testing.assert_array_equal(result.cvr, written_cvr)
    for scores, expected in ((result.ctr, written_ctr), (result.ctcvr, written_ctr * written_cvr)):
        auc = auc_with_ci(labels, scores).auc
        assert auc is not None
        assert abs(auc - roc_auc_score(labels, expected)) <= 1e-12


# ------------------------------------------------------------------------------ accepted


@pytest.mark.parametrize("shuffled", [False, True], ids=["in-order", "shuffled"])
@pytest.mark.parametrize("fmt_name", list(FORMATS))
def test_every_csv_shape_takes_the_fast_path_and_equals_the_general_reader_and_sklearn(
    tmp_path: Path, fmt_name: str, shuffled: bool
) -> None:
    n = 3000
    ctr, cvr, labels = _probabilities(n, 1)
    order = np.random.default_rng(2).permutation(n) if shuffled else None
    raw = _text(ctr, cvr, FORMATS[fmt_name], order).encode()
    fast = _fast(raw, n)
    assert fast is not None, "this shape must take the fast path"
    general = _general(raw, n)
    np.testing.assert_array_equal(fast["ctr"], general.ctr)
    np.testing.assert_array_equal(fast["cvr"], general.cvr)
    path = tmp_path / "pred.csv"
    path.write_bytes(raw)
    _assert_aucs_equal_sklearn(parse_prediction_file(path, n), ctr, cvr, labels,
                               FORMATS[fmt_name])


def test_pandas_default_to_csv_takes_the_fast_path_and_equals_sklearn(tmp_path: Path) -> None:
    n = 5000
    ctr, cvr, labels = _probabilities(n, 3)
    frame = pd.DataFrame({"row_id": np.arange(n), "ctr": ctr, "cvr": cvr})
    raw = frame.sample(frac=1.0, random_state=0).to_csv(index=False).encode()
    assert b"e-" in raw, "pandas writes the smallest probabilities with an exponent"
    assert _fast(raw, n) is not None
    path = tmp_path / "pred.csv"
    path.write_bytes(raw)
    _assert_aucs_equal_sklearn(parse_prediction_file(path, n), ctr, cvr, labels, repr)


@pytest.mark.parametrize("variant", ["crlf", "bom", "no-final-newline", "ctcvr-column",
                                     "four-columns"])
def test_variants_of_the_text_take_the_fast_path_and_equal_the_general_reader(
    tmp_path: Path, variant: str
) -> None:
    n = 2000
    ctr, cvr, _ = _probabilities(n, 4)
    text = _text(ctr, cvr, repr, newline="\r\n" if variant == "crlf" else "\n")
    if variant == "no-final-newline":
        text = text.rstrip("\n")
    if variant == "ctcvr-column":
        text = text.replace("row_id,ctr,cvr", "row_id,ctr,ctcvr", 1)
    if variant == "four-columns":
        lines = text.splitlines()
        text = "row_id,ctr,cvr,ctcvr\n" + "".join(f"{line},0.25\n" for line in lines[1:])
    raw = text.encode()
    if variant != "bom":
        assert _fast(raw, n) is not None
    else:
        raw = b"\xef\xbb\xbf" + raw
    path = tmp_path / "pred.csv"
    path.write_bytes(raw)
    assert _outcome(lambda: parse_prediction_file(path, n)) == _outcome(lambda: _general(raw, n))


def test_a_file_of_many_blocks_takes_the_fast_path_and_equals_the_general_reader(
    tmp_path: Path,
) -> None:
    # Larger than a block of the byte checks and of Arrow's reader, so both go round.
    n = 300_000
    ctr, cvr, _ = _probabilities(n, 5)
    order = np.random.default_rng(6).permutation(n)
    frame = pd.DataFrame({"row_id": order, "ctr": ctr[order], "cvr": cvr[order]})
    raw = frame.to_csv(index=False).encode()
    assert len(raw) > 2 * max(predictions._ARROW_BLOCK_BYTES, predictions._CHECK_BYTES)
    fast = _fast(raw, n)
    assert fast is not None
    general = _general(raw, n)
    np.testing.assert_array_equal(fast["ctr"], general.ctr)
    np.testing.assert_array_equal(fast["cvr"], general.cvr)
    np.testing.assert_array_equal(fast["ctr"], ctr)


def test_gzip_takes_the_fast_path_and_equals_the_plain_file(tmp_path: Path) -> None:
    n = 4000
    ctr, cvr, labels = _probabilities(n, 7)
    raw = _text(ctr, cvr, repr, np.random.default_rng(8).permutation(n)).encode()
    plain, packed = tmp_path / "pred.csv", tmp_path / "pred.csv.gz"
    plain.write_bytes(raw)
    # Two members, as `cat a.gz b.gz` makes: valid gzip, read as one text.
    packed.write_bytes(gzip.compress(raw[:5000]) + gzip.compress(raw[5000:]))
    result = parse_prediction_file(packed, n)
    assert _outcome(lambda: result) == _outcome(lambda: parse_prediction_file(plain, n))
    _assert_aucs_equal_sklearn(result, ctr, cvr, labels, repr)


@pytest.mark.parametrize("id_type", [pa.int64(), pa.int32(), pa.uint32()])
@pytest.mark.parametrize("value_type", [pa.float64(), pa.float32()])
def test_parquet_takes_the_fast_path_and_equals_sklearn(
    tmp_path: Path, id_type: pa.DataType, value_type: pa.DataType
) -> None:
    n = 6000
    ctr, cvr, labels = _probabilities(n, 9)
    order = np.random.default_rng(10).permutation(n)
    table = pa.table({"cvr": pa.array(cvr[order]).cast(value_type),
                      "row_id": pa.array(order).cast(id_type),
                      "ctr": pa.array(ctr[order]).cast(value_type)})
    path = tmp_path / "pred.parquet"
    pq.write_table(table, path, row_group_size=1000)
    names = tuple(table.column_names)
    assert predictions._parquet_fast(pq.read_table(path), names, n) is not None
    result = parse_prediction_file(path, n)
    widen = (lambda v: float(np.float32(v))) if value_type == pa.float32() else float
    _assert_aucs_equal_sklearn(result, ctr, cvr, labels, lambda v: repr(widen(v)))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    values=st.lists(st.tuples(st.floats(0.0, 1.0), st.floats(0.0, 1.0)), min_size=1,
                    max_size=60),
    fmt_name=st.sampled_from(list(FORMATS)),
    seed=st.integers(0, 2**16),
)
def test_any_accepted_file_reads_as_python_float_reads_it(
    values: list[tuple[float, float]], fmt_name: str, seed: int
) -> None:
    n = len(values)
    ctr = np.array([v[0] for v in values])
    cvr = np.array([v[1] for v in values])
    fmt = FORMATS[fmt_name]
    raw = _text(ctr, cvr, fmt, np.random.default_rng(seed).permutation(n)).encode()
    result = parse_prediction_csv(raw, n)
    assert result.ctr.tolist() == [float(fmt(float(v))) for v in ctr]
    assert result.cvr.tolist() == [float(fmt(float(v))) for v in cvr]
    assert _outcome(lambda: result) == _outcome(lambda: _general(raw, n))


# ------------------------------------------------------------------------------- refused

_BASE_ROWS = 400


def _base(fmt_name: str) -> list[str]:
    ctr, cvr, _ = _probabilities(_BASE_ROWS, 11)
    return _text(ctr, cvr, FORMATS[fmt_name]).splitlines(keepends=True)


def _edit_cell(row: int, column: int, value: str) -> Callable[[list[str]], None]:
    def edit(lines: list[str]) -> None:
        cells = lines[row].rstrip("\n").split(",")
        cells[column] = value
        lines[row] = ",".join(cells) + "\n"
    return edit


def _replace_line(row: int, line: str) -> Callable[[list[str]], None]:
    def edit(lines: list[str]) -> None:
        lines[row] = line
    return edit


BAD_EDITS: dict[str, Callable[[list[str]], None]] = {
    "missing row": lambda lines: lines.__delitem__(200),
    "duplicate row_id": _edit_cell(300, 0, "5"),
    "unknown row_id": _edit_cell(300, 0, str(_BASE_ROWS)),
    "extra row": lambda lines: lines.append(f"{_BASE_ROWS},0.5,0.5\n"),
    "nan": _edit_cell(100, 1, "nan"),
    "NaN": _edit_cell(100, 2, "NaN"),
    "inf": _edit_cell(100, 1, "inf"),
    "1e999": _edit_cell(100, 1, "1e999"),
    "above one": _edit_cell(399, 2, "1.0000001"),
    "negative": _edit_cell(100, 1, "-0.25"),
    "minus zero": _edit_cell(100, 1, "-0"),
    "minus zero exponent": _edit_cell(100, 2, "-0e-5"),
    "leading plus": _edit_cell(100, 1, "+0.5"),
    "plus exponent above one": _edit_cell(100, 1, "1e+1"),
    "leading space": _edit_cell(100, 1, " 0.5"),
    "trailing space": _edit_cell(100, 2, "0.5 "),
    "tab": _edit_cell(100, 1, "\t0.5"),
    "quoted": _edit_cell(100, 1, '"0.5"'),
    "non-numeric": _edit_cell(100, 1, "abc"),
    "hex float": _edit_cell(100, 1, "0x1p-2"),
    "underscore": _edit_cell(100, 1, "0.1_5"),
    "empty cell": _edit_cell(100, 2, ""),
    "fullwidth digit": _edit_cell(100, 1, "\uff10.5"),
    "row_id leading zero": _edit_cell(150, 0, "0149"),
    "row_id hex": _edit_cell(17, 0, "0x10"),
    "row_id minus zero": _edit_cell(1, 0, "-0"),
    "row_id plus": _edit_cell(2, 0, "+1"),
    "row_id decimal": _edit_cell(3, 0, "2.0"),
    "row_id exponent": _edit_cell(4, 0, "3e0"),
    "row_id space": _edit_cell(5, 0, " 4"),
    "row_id empty": _edit_cell(6, 0, ""),
    "too few fields": _replace_line(50, "49,0.5\n"),
    "too many fields": _replace_line(50, "49,0.5,0.5,0.5\n"),
    "empty line": lambda lines: lines.insert(70, "\n"),
    "trailing empty line": lambda lines: lines.append("\n"),
    "bare CR": _replace_line(60, "59,0.5,0.5\r"),
    "CR inside": _edit_cell(60, 1, "0.5\r0"),
    "NUL byte": _edit_cell(80, 1, "0.5\x00"),
    "over-long line": _edit_cell(90, 1, "0." + "1" * 1100),
    "long line within the limit": _edit_cell(90, 1, "0." + "1" * 700),
    "wrong header": _replace_line(0, "row_id,ctr,cvr,extra\n"),
    "header only ctr": _replace_line(0, "row_id,ctr\n"),
}


def _bad_file(name: str, fmt_name: str) -> bytes:
    lines = _base(fmt_name)
    BAD_EDITS[name](lines)
    return "".join(lines).encode()


@pytest.mark.parametrize("fmt_name", ["repr", "%.6f"])
@pytest.mark.parametrize("name", list(BAD_EDITS))
def test_every_bad_csv_is_refused_with_the_general_readers_problems(
    tmp_path: Path, name: str, fmt_name: str
) -> None:
    raw = _bad_file(name, fmt_name)
    if not raw.startswith(b"row_id,ctr,cvr\n"):
        with pytest.raises(PredictionFileError, match="wrong header"):
            parse_prediction_csv(raw, _BASE_ROWS)
        return
    if name != "long line within the limit":
        assert _fast(raw, _BASE_ROWS) is None, "the fast path must not accept it"
    path = tmp_path / "pred.csv"
    path.write_bytes(raw)
    expected = _outcome(lambda: _general(raw, _BASE_ROWS))
    if name != "long line within the limit":
        assert expected[0] == "refused"
    assert _outcome(lambda: parse_prediction_file(path, _BASE_ROWS)) == expected
    gz = tmp_path / "pred.csv.gz"
    gz.write_bytes(gzip.compress(raw))
    assert _outcome(lambda: parse_prediction_file(gz, _BASE_ROWS)) == expected


@pytest.mark.parametrize("position", ["line start", "after comma", "inside value",
                                      "before newline", "replacing newline"])
def test_no_single_byte_makes_the_fast_path_accept_what_the_general_reader_refuses(
    position: str,
) -> None:
    lines = _text(np.array([0.5, 1e-05, 0.25, 1.0, 0.0]), np.array([0.125, 0.3, 2e-07, 0.0, 1.0]),
                  repr).encode().splitlines(keepends=True)
    target = lines[3]  # "2,0.25,2e-07\n"
    at = {"line start": 0, "after comma": 2, "inside value": 4,
          "before newline": len(target) - 1, "replacing newline": len(target) - 1}[position]
    for byte in range(256):
        for mode in ("insert", "replace"):
            if position == "replacing newline" and mode == "insert":
                continue
            line = bytearray(target)
            if mode == "insert":
                line.insert(at, byte)
            else:
                line[at] = byte
            raw = b"".join([*lines[:3], bytes(line), *lines[4:]])
            fast = _outcome(lambda raw=raw: parse_prediction_csv(raw, 5))  # type: ignore[misc]
            assert fast == _outcome(lambda raw=raw: _general(raw, 5)), (mode, byte)  # type: ignore[misc]


def test_empty_and_header_only_files_are_refused_as_before(tmp_path: Path) -> None:
    for content, message in ((b"", "the file is empty"),
                             (b"row_id,ctr,cvr\n", "the file has 0 data lines; expected 3")):
        path = tmp_path / "pred.csv"
        path.write_bytes(content)
        with pytest.raises(PredictionFileError, match=message):
            parse_prediction_file(path, 3)


def test_truncated_and_corrupt_gzip_keep_zlibs_messages(tmp_path: Path) -> None:
    import zlib

    raw = _text(np.full(50, 0.5), np.full(50, 0.25), repr).encode()
    packed = gzip.compress(raw)
    path = tmp_path / "pred.csv.gz"
    path.write_bytes(packed[:-12])
    with pytest.raises(PredictionFileError, match="truncated gzip file"):
        parse_prediction_file(path, 50)
    corrupt = bytearray(packed)
    corrupt[-8] ^= 0xFF  # the CRC
    path.write_bytes(bytes(corrupt))
    decompressor = zlib.decompressobj(wbits=31)
    with pytest.raises(zlib.error) as zlib_error:
        decompressor.decompress(bytes(corrupt))
    with pytest.raises(PredictionFileError) as info:
        parse_prediction_file(path, 50)
    expected = f"prediction file refused:\n- corrupt gzip data: {zlib_error.value}"
    assert info.value.summary == expected


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


BAD_PARQUET: dict[str, pa.Table] = {
    "string columns": pa.table({"row_id": ["0", "1", "2"], "ctr": [0.5, 0.1, 0.1],
                                "cvr": ["a", "b", "c"]}),
    "null value": pa.table({"row_id": [0, 1, 2], "ctr": [0.5, None, 0.1], "cvr": [0.1, 0.2, 0.3]}),
    "null id": pa.table({"row_id": [0, None, 2], "ctr": [0.5, 0.2, 0.1], "cvr": [0.1, 0.2, 0.3]}),
    "nan": pa.table({"row_id": [0, 1, 2], "ctr": [0.5, float("nan"), 0.1], "cvr": [0.1, 0.2, 0.3]}),
    "minus zero": pa.table({"row_id": [0, 1, 2], "ctr": [0.5, -0.0, 0.1], "cvr": [0.1, 0.2, 0.3]}),
    "above one": pa.table({"row_id": [0, 1, 2], "ctr": [0.5, 0.2, 0.1], "cvr": [0.1, 1.5, 0.3]}),
    "duplicate id": pa.table({"row_id": [0, 0, 2], "ctr": [0.5, 0.2, 0.1], "cvr": [0.1, 0.2, 0.3]}),
    "negative id": pa.table({"row_id": [0, -1, 2], "ctr": [0.5, 0.2, 0.1], "cvr": [0.1, 0.2, 0.3]}),
    "unknown id": pa.table({"row_id": [0, 3, 2], "ctr": [0.5, 0.2, 0.1], "cvr": [0.1, 0.2, 0.3]}),
    "wrong columns": pa.table({"row_id": [0, 1, 2], "ctr": [0.5, 0.2, 0.1]}),
    "wrong row count": pa.table({"row_id": [0, 1], "ctr": [0.5, 0.2], "cvr": [0.1, 0.2]}),
    "float ids": pa.table({"row_id": [0.0, 1.0, 2.0], "ctr": [0.5, 0.2, 0.1],
                           "cvr": [0.1, 0.2, 0.3]}),
}


@pytest.mark.parametrize("name", list(BAD_PARQUET))
def test_every_bad_parquet_is_refused_with_the_general_readers_problems(
    tmp_path: Path, name: str
) -> None:
    path = tmp_path / "pred.parquet"
    path.write_bytes(_parquet_bytes(BAD_PARQUET[name]))
    size, cap = path.stat().st_size, predictions.default_max_bytes(3)
    with pytest.raises(PredictionFileError) as fast:
        parse_prediction_file(path, 3)
    with pytest.raises(PredictionFileError) as general:
        predictions._parse_parquet(path, 3, cap, size, fast=False)
    assert (fast.value.summary, fast.value.problems) == (general.value.summary,
                                                         general.value.problems)
