"""Strict prediction-file parsing (SPEC "Prediction file").

Accepted files
--------------
* **Formats**, told apart by their first bytes, never by the file name: Parquet (``PAR1``),
  gzip-compressed CSV (``1f 8b``; several concatenated members are fine) and plain CSV.
* **Header** (CSV) or column names (Parquet): exactly the names of one of ``row_id,ctr,cvr``,
  ``row_id,ctr,cvr,ctcvr`` or ``row_id,ctr,ctcvr``. SPEC lets rows come in any order and the names
  are unambiguous, so the columns may come in any order too; nothing else may be there.
* **CSV text**: ASCII, an optional UTF-8 byte-order mark, comma separators without quoting or
  spaces, LF or CRLF line ends (the last line's end is optional), lines of at most
  `MAX_LINE_BYTES` bytes.
* **row_id**: a plain non-negative integer written without sign or leading zeros (``0``, ``17``;
  not ``007``, ``-1``, ``1.0``, ``NA``): ids are compared as written. Every id 0 … N−1 exactly once.
* **Probabilities**: a plain decimal in [0, 1]: digits with at most one ``.`` (``0.25``, ``1``,
  ``.5``, ``0.``) and optionally an exponent (``1e-05``, ``2.5E-3``), because models and
  `repr` write those for small probabilities; the value must be finite and within [0, 1] once
  read, so ``1e999`` is refused. No sign, no ``nan``/``inf``, no ``_``, no spaces, no
  non-ASCII digits, no empty cells. Parquet columns must be floating point with no nulls.
* **Size**: at most `max_bytes` bytes of CSV text (after decompression; default
  ``n_rows * 100 + 1 MiB``), so a gzip bomb stops early and memory stays bounded.

Missing task: derived by `evaluator.tasks.derive_outputs`, as for a checkpoint: with ``ctr,cvr``
the CTCVR is ``ctr * cvr``; with ``ctr,ctcvr`` the CVR is ``ctcvr / ctr`` clipped to [0, 1], and 0
where ``ctr == 0``.

Errors: every problem found is reported at once in a `PredictionFileError`; problems of one kind
are grouped with their count and the first `MAX_EXAMPLES` examples (line, column, value).

Speed: the file is memory-mapped, never copied (gzip inflates with ISA-L into an anonymous
map). Three readers, each deciding only what it can decide:

1. fixed-width text (``%.6f`` and the like, row_id first): a vectorised byte-level reader
   (SWAR digit conversion on 8-byte words);
2. any other plain text with row_id first (shortest round-trip floats as pandas and `repr`
   write them, ``%.17g``, exponents, CRLF, any row order): Arrow's multithreaded CSV reader
   with typed columns, while vectorised byte checks run beside it in a thread for what
   Arrow's reader would let through (spaces, signs, hex or zero-padded ids, long lines, bare
   CRs), and a bits check on the values for NaN, infinities, negatives and values above one;
3. everything else, and every file that the first two do not accept outright: the general
   reader (blocks of whole lines split by Arrow's CSV reader, or by numpy where a block is
   malformed; characters checked with numpy; Arrow casts), the one that lists the problems of
   a refused file.

A fast reader never refuses a file itself: when anything is off it steps aside and the
general reader decides, so every refusal carries the same problems and messages. Values are
put at their row_id by a scatter (no sort, whatever the row order). Parquet is read with
Arrow's threads and checked the same way, its general code explaining refusals.
"""

from __future__ import annotations

import mmap
import os
import zlib
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, cast

import numpy as np
import numpy.typing as npt
from isal import isal_zlib

from evaluator.memory import small_pages
from evaluator.tasks import derive_outputs

ROW_ID = "row_id"
ACCEPTED_HEADERS: tuple[tuple[str, ...], ...] = (
    ("row_id", "ctr", "cvr"),
    ("row_id", "ctr", "cvr", "ctcvr"),
    ("row_id", "ctr", "ctcvr"),
)
MAX_LINE_BYTES = 1024
BYTES_PER_ROW = 100
SLACK_BYTES = 1 << 20
MAX_EXAMPLES = 5
_READ_CHUNK = 1 << 20
_INFLATE_STEP = 16 << 20
_BOM = b"\xef\xbb\xbf"
_GZIP_MAGIC = b"\x1f\x8b"
_PARQUET_MAGIC = b"PAR1"

_DECIMAL_RE = r"^(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$"
_SIGNED_DECIMAL_RE = r"^[-+](?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$"
_ROW_ID_RE = r"^(?:0|[1-9][0-9]{0,17})$"

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a submitted file. `row` is the 1-based line number in the file
    (for Parquet, the 1-based row number). `count` > 1 marks a problem that stands for that many
    occurrences of one kind (its examples are listed as separate problems)."""

    message: str
    row: int | None = None
    column: str | None = None
    value: str | None = None
    count: int = 1


class PredictionFileError(Exception):
    """The file is refused. `problems` lists every problem found (grouped, with counts)."""

    def __init__(self, problems: list[Problem], summary: str) -> None:
        super().__init__(summary)
        self.problems = problems
        self.summary = summary


@dataclass(frozen=True)
class Predictions:
    """Probabilities aligned by row_id (index i is test row i). float64 arrays of length N.

    `cvr` and `ctcvr` are always both present after parsing: the missing one is derived by
    `evaluator.tasks.derive_outputs`.
    """

    ctr: npt.NDArray[np.float64]
    cvr: npt.NDArray[np.float64]
    ctcvr: npt.NDArray[np.float64]
    columns: tuple[str, ...] = field(default=("row_id", "ctr", "cvr"))


def default_max_bytes(n_rows: int) -> int:
    """The default cap on CSV text: generous for 17-digit values in four columns."""
    return n_rows * BYTES_PER_ROW + SLACK_BYTES


# ------------------------------------------------------------------------------ problems


@dataclass
class _Group:
    message: str
    column: str | None
    count: int = 0
    examples: list[Problem] = field(default_factory=list)


class _Problems:
    """Collects problems grouped by kind, keeping a count and the first few examples."""

    def __init__(self) -> None:
        self._groups: dict[tuple[str, str | None], _Group] = {}

    def __bool__(self) -> bool:
        return bool(self._groups)

    def add(
        self,
        message: str,
        *,
        column: str | None = None,
        count: int = 1,
        examples: Sequence[tuple[int | None, str | None]] = (),
    ) -> None:
        group = self._groups.setdefault((message, column), _Group(message, column))
        group.count += count
        room = MAX_EXAMPLES - len(group.examples)
        for row, value in list(examples)[: max(room, 0)]:
            group.examples.append(Problem(message, row=row, column=column, value=value))

    def error(self) -> PredictionFileError:
        problems: list[Problem] = []
        lines = ["prediction file refused:"]
        for group in self._groups.values():
            where = f"column {group.column}: " if group.column else ""
            shown = "; ".join(_describe(p) for p in group.examples if p.row or p.value)
            count = f"{group.count} × " if group.count > 1 else ""
            line = f"- {where}{count}{group.message}"
            if shown:
                more = group.count - len(group.examples)
                line += f" (e.g. {shown}{f'; and {more} more' if more > 0 else ''})"
            lines.append(line)
            problems.extend(group.examples)
            if group.count > len(group.examples) or not group.examples:
                problems.append(Problem(group.message, column=group.column, count=group.count))
        return PredictionFileError(problems, "\n".join(lines))

    def raise_if_any(self) -> None:
        if self:
            raise self.error()


def _describe(problem: Problem) -> str:
    parts = []
    if problem.row is not None:
        parts.append(f"line {problem.row}")
    if problem.value is not None:
        parts.append(repr(problem.value))
    return " ".join(parts)


def _refuse(
    message: str, *, examples: Sequence[tuple[int | None, str | None]] = ()
) -> PredictionFileError:
    """The error for a problem that stops reading at once (nothing after it can be checked)."""
    problems = _Problems()
    problems.add(message, examples=examples)
    return problems.error()


def _shown(raw: bytes | str, limit: int = 40) -> str:
    text = raw if isinstance(raw, str) else raw.decode("utf-8", errors="replace")
    return text if len(text) <= limit else text[:limit] + "…"


# -------------------------------------------------------------------------------- reading


def parse_prediction_file(path: Path, n_rows: int, *, max_bytes: int | None = None) -> Predictions:
    """Parse and validate CSV / gzip CSV / Parquet; raise PredictionFileError listing problems.

    `max_bytes` caps the CSV text (after decompression) and the Parquet data; the default is
    `default_max_bytes(n_rows)`.
    """
    if n_rows < 1:
        raise ValueError(f"n_rows must be positive, got {n_rows}")
    cap = default_max_bytes(n_rows) if max_bytes is None else max_bytes
    with open(path, "rb") as file:
        magic = file.read(4)
        size = os.fstat(file.fileno()).st_size
        if magic == _PARQUET_MAGIC:
            return _parse_parquet(Path(path), n_rows, cap, size)
        file.seek(0)
        text: _Text
        if magic[:2] == _GZIP_MAGIC:
            text = _gunzip(file, cap)
        else:
            if size > cap:
                raise _refuse(
                    f"file is {size} bytes; at most {cap} are allowed for {n_rows} rows"
                )
            text = _mapped(file, size)
    return _parse_csv_text(text.raw, text.length, n_rows)


@dataclass(frozen=True)
class _Text:
    """CSV text: the first `length` bytes of `raw` (a memory map, or bytes)."""

    raw: mmap.mmap | bytes | bytearray
    length: int


def _mapped(file: BinaryIO, size: int) -> _Text:
    """The file's bytes, memory-mapped: the page cache's own pages, never copied (a copy of a
    few hundred MB costs more in page faults than the parse itself)."""
    if size == 0:
        return _Text(b"", 0)
    return _Text(mmap.mmap(file.fileno(), size, access=mmap.ACCESS_READ), size)


# Compressed bytes per decompression step: deflate expands at most ~1032-fold, so one step
# never yields more than about `_INFLATE_STEP` bytes whatever the data (a bomb stops early).
_INFLATE_INPUT = _INFLATE_STEP // 1040
_ISAL_ERROR = cast("type[Exception]", isal_zlib.error)


def _gunzip(file: BinaryIO, cap: int) -> _Text:
    """Decompress into an anonymous memory map of `cap + 1` bytes (pages are only backed as
    they are written, so the cap costs nothing up front), with ISA-L's inflate: several times
    zlib's speed. Any error is explained by `_gunzip_zlib`, the reference, so that its
    messages stay those of zlib."""
    # Small pages on purpose: huge pages asked for with madvise made the kernel compact memory
    # on each fault, three times the cost of the 4 KiB faults on the machine measured.
    out = mmap.mmap(-1, cap + 1)
    length = 0
    decompressor = isal_zlib.decompressobj(wbits=16 + isal_zlib.MAX_WBITS)
    try:
        while chunk := file.read(_READ_CHUNK):
            for start in range(0, len(chunk), _INFLATE_INPUT):
                piece = chunk[start : start + _INFLATE_INPUT]
                while piece:
                    if decompressor.eof:
                        # Concatenated members are valid gzip: go on with the next one.
                        decompressor = isal_zlib.decompressobj(wbits=16 + isal_zlib.MAX_WBITS)
                    inflated = decompressor.decompress(piece)
                    if length + len(inflated) > cap:
                        raise _refuse(
                            f"gzip data decompresses to more than {cap} bytes (the limit for "
                            "this test set); refused as a possible gzip bomb"
                        )
                    out[length : length + len(inflated)] = inflated
                    length += len(inflated)
                    piece = decompressor.unused_data if decompressor.eof else b""
    except _ISAL_ERROR:
        file.seek(0)
        text = _gunzip_zlib(file, cap)  # raises with zlib's own message
        return _Text(text, len(text))
    if not decompressor.eof:
        raise _refuse("truncated gzip file: the compressed data ends before the stream does")
    return _Text(out, length)


def _gunzip_zlib(file: BinaryIO, cap: int) -> bytearray:
    """The reference decompression (zlib), whose errors are the ones reported."""
    out = bytearray()
    decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        while chunk := file.read(_READ_CHUNK):
            while chunk:
                if decompressor.eof:
                    # Concatenated members are valid gzip: go on with the next one.
                    decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
                # max_length bounds each step (a bomb never inflates past cap + 1 bytes, and no
                # single step holds more than a chunk's worth beside `out`).
                out += decompressor.decompress(chunk, min(_INFLATE_STEP, cap + 1 - len(out)))
                if len(out) > cap:
                    raise _refuse(
                        f"gzip data decompresses to more than {cap} bytes (the limit for this "
                        "test set); refused as a possible gzip bomb"
                    )
                chunk = (
                    decompressor.unused_data if decompressor.eof else decompressor.unconsumed_tail
                )
    except zlib.error as exc:
        raise _refuse(f"corrupt gzip data: {exc}") from None
    if not decompressor.eof:
        raise _refuse("truncated gzip file: the compressed data ends before the stream does")
    return out


# ----------------------------------------------------------------------------------- CSV


def parse_prediction_csv(data: bytes | bytearray, n_rows: int) -> Predictions:
    """Parse CSV text already in memory (see the module docstring for the rules)."""
    return _parse_csv_text(data, len(data), n_rows)


def _parse_csv_text(raw: mmap.mmap | bytes | bytearray, length: int, n_rows: int) -> Predictions:
    """Parse the first `length` bytes of `raw`: the Arrow reader when the text is plain, the
    general reader (which also explains every problem) otherwise."""
    offset = len(_BOM) if raw[: len(_BOM)] == _BOM and length >= len(_BOM) else 0
    if length == offset:
        raise _refuse("the file is empty; expected a header line and one line per test row")
    header_end = raw.find(b"\n", offset, min(offset + MAX_LINE_BYTES + 2, length))
    if header_end < 0:
        if length - offset > MAX_LINE_BYTES:
            raise _refuse(f"line 1 (the header) is longer than {MAX_LINE_BYTES} bytes")
        header_raw = bytes(raw[offset:length])
        body_start = length
    else:
        header_raw = bytes(raw[offset:header_end])
        body_start = header_end + 1
    names = _parse_header(header_raw.removesuffix(b"\r"))
    buf = np.frombuffer(raw, dtype=np.uint8, count=length)
    problems = _Problems()
    # Fixed-width text (`%.6f`, the commonest) reads faster still with the SWAR reader.
    parsed = _fast_fixed_width(buf, body_start, names, n_rows)
    if parsed is None:
        fast = _fast_csv(buf, body_start, names, n_rows)
        if fast is not None:
            return _assemble(names, fast)
        parsed = _general_csv(raw, buf, body_start, names, problems)
    return _assemble(names, _aligned_or_raise(parsed, n_rows, problems))


def _parse_header(raw: bytes) -> tuple[str, ...]:
    expected = " | ".join(",".join(h) for h in ACCEPTED_HEADERS)
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise _refuse(
            f"the header is not plain ASCII; expected one of: {expected}",
            examples=[(1, _shown(raw))],
        ) from None
    names = tuple(text.split(","))
    if len(set(names)) != len(names) or sorted(names) not in [sorted(h) for h in ACCEPTED_HEADERS]:
        raise _refuse(
            f"wrong header; expected one of: {expected} (columns in any order)",
            examples=[(1, _shown(raw))],
        )
    return names


@dataclass(frozen=True)
class _Parsed:
    """Values as read, in file order, plus the line (or row) number of each."""

    row_id: IntArray
    values: dict[str, FloatArray]
    lines: IntArray | None  # None: record i sits on line first_line + i
    first_line: int
    records: int  # data lines (or rows) in the file, including refused ones
    unit: str = "line"
    in_order: bool = False  # row_id is known to be 0, 1, 2, … already


# ------------------------------------------------------------------------ fast Arrow reader

# Bit patterns, as unsigned integers, of the doubles in [0, 1]: 0.0 is 0 and 1.0 is
# 0x3FF0…0; -0.0 and every negative number have the sign bit set, NaN and ±inf an all-ones
# exponent, so each lies above. One max() of the bits checks a whole column.
_ONE_BITS = int(np.float64(1.0).view(np.uint64))
# Bytes of plain text, as the reader sees them: ',' '-' '.' '/' and the digits are 44 … 57.
_PLAIN_LOW, _PLAIN_SPAN = 44, 13
# Every segment of this many bytes must hold a line end; lines are then shorter than
# 2 · _SEGMENT − 1 bytes, within MAX_LINE_BYTES, without locating a single line end.
_SEGMENT = 512
assert 2 * _SEGMENT - 2 <= MAX_LINE_BYTES
_CHECK_BYTES = 1 << 20  # a multiple of _SEGMENT: blocks of the byte checks stay in cache
_ARROW_BLOCK_BYTES = 1 << 22


def _fast_csv(
    buf: npt.NDArray[np.uint8], body_start: int, names: tuple[str, ...], n_rows: int
) -> dict[str, FloatArray] | None:
    """The values aligned by row_id when the text is plain and every rule holds, else None
    (and the general reader decides, and explains). Never accepts what the general reader
    refuses: see `_plain_text` for what Arrow's reader alone would let through.

    Arrow's multithreaded CSV reader splits and converts (its float parser rounds correctly,
    as Python's `float` does); the byte checks run beside it in a thread, and the values are
    scattered to their row_id, so no sort is needed for any row order."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    if names[0] != ROW_ID or buf.size - body_start < 2:
        return None
    body = buf[body_start:]
    with ThreadPoolExecutor(1) as pool:
        plain = pool.submit(_plain_text, body)
        try:
            # Streamed: each batch is scattered and freed as the next ones are parsed, so
            # Arrow's memory is reused instead of a whole table's worth paged in afresh.
            batches = pa_csv.open_csv(
                pa.BufferReader(pa.py_buffer(body)),
                read_options=pa_csv.ReadOptions(
                    column_names=list(names), use_threads=True, block_size=_ARROW_BLOCK_BYTES
                ),
                parse_options=pa_csv.ParseOptions(
                    quote_char=False, double_quote=False, escape_char=False,
                    newlines_in_values=False, ignore_empty_lines=False,
                ),
                convert_options=pa_csv.ConvertOptions(
                    column_types={n: pa.int64() if n == ROW_ID else pa.float64() for n in names},
                    null_values=[], strings_can_be_null=False, quoted_strings_can_be_null=False,
                ),
            )
            values = _scatter_batches(batches, names, n_rows)
        except pa.ArrowException:
            values = None  # anything Arrow cannot read: the general reader says why
        lines = plain.result()
    if values is None or lines is None:
        return None
    ends_with_newline = body[-1] == ord("\n")
    if lines != n_rows - 1 + ends_with_newline:
        return None  # a line end Arrow read as one that is not '\n' (a bare CR)
    return values


def _scatter_batches(batches: Iterable[Any], names: tuple[str, ...], n_rows: int
                     ) -> dict[str, FloatArray] | None:
    """Each batch's values put at their row_id, when there are `n_rows` rows, every id is in
    range and occurs once, and every value is in [0, 1]; else None."""
    values: dict[str, FloatArray] = {
        name: small_pages(n_rows, np.float64) for name in names if name != ROW_ID
    }
    seen = np.zeros(n_rows, dtype=np.bool_)
    rows = 0
    for batch in batches:
        rows += batch.num_rows
        if rows > n_rows:
            return None
        if batch.num_rows == 0:
            continue
        ids = _as_int64(_numbers(batch.column(0)))
        if ids is None or int(ids.view(np.uint64).max()) >= n_rows:
            return None
        # Rows in row_id order (the usual file) are copied as slices, not scattered.
        first, last = int(ids[0]), int(ids[-1])
        where: IntArray | slice = ids
        if last - first == ids.size - 1 and (ids.size == 1 or bool((ids[1:] > ids[:-1]).all())):
            where = slice(first, last + 1)
        for j, name in enumerate(names[1:], start=1):
            column = _numbers(batch.column(j))
            if column is None or column.dtype.kind != "f":
                return None
            # float16 and float32 widen exactly.
            column = column.astype(np.float64, copy=False)
            if int(column.view(np.uint64).max()) > _ONE_BITS:
                return None
            values[name][where] = column
        seen[where] = True
    if rows != n_rows or int(np.count_nonzero(seen)) != n_rows:
        return None
    return values


def _parquet_fast(table: Any, names: tuple[str, ...], n_rows: int) -> dict[str, FloatArray] | None:
    """A Parquet table's values aligned by row_id when every rule holds (no nulls, ids a
    permutation, values in [0, 1]); else None."""
    if any(table.column(name).null_count for name in names):
        return None
    # row_id first, as `_scatter_batches` expects, whatever the file's column order.
    order = (ROW_ID, *(n for n in names if n != ROW_ID))
    return _scatter_batches(table.select(list(order)).to_batches(), order, n_rows)


def _numbers(array: Any) -> npt.NDArray[Any] | None:
    """A numeric Arrow array without nulls as a numpy view of its values buffer; else None.
    (Arrow's own `to_numpy` imports pandas on first use, a third of a second.)"""
    import pyarrow as pa

    kind = array.type
    if array.null_count or not (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
        return None
    letter = "f" if pa.types.is_floating(kind) else "i" if pa.types.is_signed_integer(kind) else "u"
    dtype = np.dtype(f"<{letter}{kind.bit_width // 8}")
    return np.frombuffer(array.buffers()[1], dtype=dtype, count=len(array),
                         offset=array.offset * dtype.itemsize)


def _as_int64(ids: npt.NDArray[Any] | None) -> IntArray | None:
    """Integer ids as int64, or None when they cannot all be row ids (not integers, or
    unsigned ones past int64, which no test set reaches)."""
    if ids is None:
        return None
    if ids.dtype.kind == "u":
        if ids.size and int(ids.max()) > np.iinfo(np.int64).max:
            return None
        return ids.astype(np.int64, copy=False)
    if ids.dtype.kind != "i":
        return None
    return ids.astype(np.int64, copy=False)


def _plain_text(body: npt.NDArray[np.uint8]) -> int | None:
    """The number of '\\n' in `body` when its bytes are plain; else None.

    Arrow's reader, given typed columns, refuses any cell that is not a number, but lets
    through some the rules refuse: spaces and tabs around a number, a leading '+', '-0', hex
    ids ('0x1F') and leading zeros ('007'), lines of any length, and a bare CR read as a line
    end. (NaN, infinities and negative numbers are caught by the bits check on the values.)
    Plain means: every byte is a digit or one of ``, - . / \\n`` (anything else only as an
    exponent's 'e'/'E' and '+', or a CR before a line end), each segment of `_SEGMENT` bytes
    holds a line end, and every line starts with a digit 1–9, bar one that starts ``0,``."""
    size = body.size
    shifted = np.empty(_CHECK_BYTES, dtype=np.uint8)
    newline = np.empty(_CHECK_BYTES, dtype=np.bool_)
    mask = np.empty(_CHECK_BYTES, dtype=np.bool_)
    lines = other = 0
    odd_starts: list[int] = [] if 49 <= body[0] <= 57 else [0]
    for lo in range(0, size, _CHECK_BYTES):
        block = body[lo : lo + _CHECK_BYTES]
        k = block.size
        t, nl, m = shifted[:k], newline[:k], mask[:k]
        np.subtract(block, np.uint8(_PLAIN_LOW), out=t)
        np.greater(t, np.uint8(_PLAIN_SPAN), out=m)
        other += int(np.count_nonzero(m))
        np.equal(block, np.uint8(ord("\n")), out=nl)
        count = int(np.count_nonzero(nl))
        lines += count
        full = k - k % _SEGMENT
        if not nl[:full].reshape(-1, _SEGMENT).any(axis=1).all():
            return None
        # The first byte of each line that starts in this block (after a '\n' in it).
        after = body[lo + 1 : lo + k + 1]
        j = after.size
        np.subtract(after, np.uint8(ord("1")), out=t[:j])
        np.greater(t[:j], np.uint8(8), out=m[:j])
        m[:j] &= nl[:j]
        if m[:j].any():
            odd_starts.extend((np.flatnonzero(m[:j]) + lo + 1).tolist())
            if len(odd_starts) > 1:
                return None
    if any(body[p] != ord("0") or p + 1 >= size or body[p + 1] != ord(",") for p in odd_starts):
        return None
    other -= lines
    if other and not _only_exponents_and_crlf(body, other):
        return None
    return lines


def _only_exponents_and_crlf(body: npt.NDArray[np.uint8], count: int) -> bool:
    """Whether the `count` bytes of `body` outside the plain set (line ends aside) are all an
    exponent's 'e' or 'E', a '+' just after one, or a CR just before a line end."""
    found = 0
    for char in b"eE+\r":
        where = _positions(body, char)
        if char == ord("+") and where.size and not np.isin(body[where - 1], (101, 69)).all():
            return False
        if char == ord("\r") and where.size and (
            where[-1] + 1 >= body.size or (body[where + 1] != ord("\n")).any()
        ):
            return False
        found += where.size
        if found == count:
            return True
    return False


def _positions(body: npt.NDArray[np.uint8], char: int) -> IntArray:
    parts = [np.flatnonzero(body[lo : lo + _CHECK_BYTES] == char) + lo
             for lo in range(0, body.size, _CHECK_BYTES)]
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)


# ----------------------------------------------------------------- fast fixed-width reader

_ASCII_ZEROS = np.uint64(0x3030303030303030)


def _words(buf: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint64]:
    """Every 8-byte little-endian word of the buffer, one per starting byte (a strided view)."""
    return np.ndarray(
        shape=(max(buf.size - 7, 0),), dtype="<u8", buffer=buf.data, strides=(1,)
    )


# For a field of w bytes sitting in the top of a word: the mask of the (8 - w) low bytes.
_LOW_MASKS = np.array([(1 << (8 * (8 - w))) - 1 if w < 8 else 0 for w in range(9)],
                      dtype=np.uint64)
_BLOCK_BYTES = 1 << 21


def _digit_words(
    words: npt.NDArray[np.uint64], ends: IntArray, width: IntArray | int, dot: int
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.bool_]]:
    """Read fields of at most 8 bytes ending just before `ends` as integers (a '.' at index
    `dot`, counted from the field's start, reads as a 0 digit; -1: no dot). Returns the
    integers and whether each field was all digits. `ends - 8` must not be negative.

    The eight ASCII digits of a word become an integer in three multiply-shift steps (the
    classic SWAR conversion), in place: fresh temporaries cost more than the arithmetic."""
    word = words[ends - 8]
    # The field sits in the top `width` bytes; the bytes below belong to what precedes it and
    # become ASCII zeros, which read as leading zeros.
    low = _LOW_MASKS[width]
    word &= ~low
    word |= low & _ASCII_ZEROS
    ok = np.ones(word.shape, dtype=bool)
    if dot >= 0:
        assert isinstance(width, int)
        shift = np.uint64((8 - width + dot) * 8)
        byte = np.right_shift(word, shift)
        byte &= np.uint64(0xFF)
        ok &= byte == np.uint64(ord("."))
        word &= ~(np.uint64(0xFF) << shift)
        word |= np.uint64(0x30) << shift
    # A byte is a digit when its high nibble is 3, before and after adding 6 ('9' + 6 = '?').
    high = np.uint64(0xF0F0F0F0F0F0F0F0)
    check = np.bitwise_and(word, high)
    ok &= check == _ASCII_ZEROS
    np.add(word, np.uint64(0x0606060606060606), out=check)
    check &= high
    ok &= check == _ASCII_ZEROS
    word -= _ASCII_ZEROS
    word &= np.uint64(0x0F0F0F0F0F0F0F0F)
    word *= np.uint64(2561)
    word >>= np.uint64(8)
    word &= np.uint64(0x00FF00FF00FF00FF)
    word *= np.uint64(6553601)
    word >>= np.uint64(16)
    word &= np.uint64(0x0000FFFF0000FFFF)
    word *= np.uint64(42949672960001)
    word >>= np.uint64(32)
    return word, ok


@dataclass(frozen=True)
class _Layout:
    names: tuple[str, ...]
    widths: tuple[int, ...]
    dots: tuple[int, ...]
    crlf: bool


def _fast_fixed_width(
    buf: npt.NDArray[np.uint8], body_start: int, names: tuple[str, ...], n_rows: int
) -> _Parsed | None:
    """Vectorised reader for the common layout: row_id first, every probability written with
    the same width as in the first data line (≤ 8 bytes, one '.' at a fixed place), LF or CRLF,
    a final line end. Returns None whenever the file does not fit exactly (the general reader
    then decides), so it never has to explain a problem.

    Works through the text in blocks of about `_BLOCK_BYTES` so that temporaries stay in cache
    and are reused rather than freshly paged in. (Parsing ranges of lines in two threads was
    slower on the shared 2-core machine this was measured on, so it stays single-threaded.)"""
    if names[0] != ROW_ID or buf.size - body_start < 2 or buf[-1] != ord("\n"):
        return None
    first_end = bytes(buf[body_start : body_start + MAX_LINE_BYTES + 1]).find(b"\n")
    if first_end < 0:
        return None
    first = bytes(buf[body_start : body_start + first_end])
    fields = first.removesuffix(b"\r").split(b",")
    if len(fields) != len(names) or any(not 1 <= len(f) <= 8 for f in fields[1:]):
        return None
    layout = _Layout(
        names, tuple(len(f) for f in fields[1:]), tuple(f.find(b".") for f in fields[1:]),
        first.endswith(b"\r"),
    )
    words = _words(buf)
    ids = np.empty(n_rows, dtype=np.int64)
    values = {name: np.empty(n_rows, dtype=np.float64) for name in names[1:]}
    done, pos, in_order = 0, body_start, True
    while pos < buf.size:
        newlines = np.flatnonzero(buf[pos : pos + _BLOCK_BYTES] == ord("\n"))
        count = newlines.size
        if count == 0 or done + count > n_rows:
            return None
        newlines += pos
        rows = slice(done, done + count)
        if not _fast_block(buf, words, pos, newlines, layout, ids[rows],
                           {name: column[rows] for name, column in values.items()}):
            return None
        chunk = ids[rows]
        in_order = in_order and chunk[0] == done and bool((np.diff(chunk) == 1).all())
        done += count
        pos = int(newlines[-1]) + 1
    if done != n_rows:
        return None
    return _Parsed(ids, values, None, 2, n_rows, in_order=in_order)


def _fast_block(
    buf: npt.NDArray[np.uint8],
    words: npt.NDArray[np.uint64],
    pos: int,
    newlines: IntArray,
    layout: _Layout,
    ids_out: IntArray,
    values_out: dict[str, FloatArray],
) -> bool:
    end = newlines - 1 if layout.crlf else newlines
    if layout.crlf and not (buf[end] == ord("\r")).all():
        return False
    for name, width, dot in reversed(
        list(zip(layout.names[1:], layout.widths, layout.dots, strict=True))
    ):
        digits, ok = _digit_words(words, end, width, dot)
        if not ok.all():
            return False
        if dot >= 0:
            # The dot read as a 0 digit: take the integer part out and put it back one place
            # lower (digits = whole·10·scale + fraction; mantissa = whole·scale + fraction).
            scale = 10 ** (width - 1 - dot)
            whole = digits // np.uint64(10 * scale)
            whole *= np.uint64(9 * scale)
            digits -= whole
        else:
            scale = 1
        if (digits > np.uint64(scale)).any():
            return False
        np.divide(digits, float(scale), out=values_out[name])
        end = end - (width + 1)
        if not (buf[end] == ord(",")).all():
            return False
    starts = np.empty_like(newlines)
    starts[0] = pos
    starts[1:] = newlines[:-1] + 1
    id_width = end - starts
    if int(id_width.min()) < 1 or int(id_width.max()) > 8:
        return False
    digits, ok = _digit_words(words, end, id_width, -1)
    if not ok.all() or ((buf[starts] == ord("0")) & (id_width > 1)).any():
        return False
    ids_out[:] = digits
    return True


# ------------------------------------------------------------------------- general reader


_GENERAL_BLOCK_BYTES = 1 << 22


def _general_csv(
    raw: mmap.mmap | bytes | bytearray,
    buf: npt.NDArray[np.uint8],
    body_start: int,
    names: tuple[str, ...],
    problems: _Problems,
) -> _Parsed:
    """Reads any CSV body, block by block (whole lines, about `_GENERAL_BLOCK_BYTES` each), so
    memory stays a few times the block size beyond the text and the results."""
    parts: list[_Parsed] = []
    pos, line, records = body_start, 2, 0
    while pos < buf.size:
        stop = pos + _GENERAL_BLOCK_BYTES
        if stop >= buf.size:
            end = buf.size
        else:
            last = raw.rfind(b"\n", pos, stop)
            if last < 0:
                # No line end within a whole block: one line far over the limit. Skip it
                # without ever holding it anywhere but in the text already read.
                nxt = raw.find(b"\n", pos, buf.size)
                end = buf.size if nxt < 0 else nxt + 1
                problems.add(
                    f"line longer than {MAX_LINE_BYTES} bytes",
                    examples=[(line, f"{end - pos - (nxt >= 0)} bytes")],
                )
                pos, line, records = end, line + 1, records + 1
                continue
            end = last + 1
        part = _general_block(bytes(raw[pos:end]), line, names, problems)
        parts.append(part)
        pos, line, records = end, line + part.records, records + part.records
    if not parts:
        empty = np.zeros(0, dtype=np.float64)
        return _Parsed(np.zeros(0, dtype=np.int64), {n: empty for n in names if n != ROW_ID},
                       np.zeros(0, dtype=np.int64), 2, records)
    lines = [p.lines for p in parts if p.lines is not None]
    return _Parsed(
        np.concatenate([p.row_id for p in parts]),
        {n: np.concatenate([p.values[n] for p in parts]) for n in names if n != ROW_ID},
        np.concatenate(lines),
        2,
        records,
    )


def _general_block(
    raw: bytes, first_line: int, names: tuple[str, ...], problems: _Problems
) -> _Parsed:
    """Parse whole lines (`raw` ends with a line end, or is the end of the file)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    buf = np.frombuffer(raw, dtype=np.uint8)
    newlines = np.flatnonzero(buf == ord("\n"))
    ends = newlines
    if buf.size and buf[-1] != ord("\n"):
        ends = np.concatenate((newlines, [buf.size]))
    starts = np.concatenate(([0], newlines + 1))[: ends.size]
    line_no = np.arange(ends.size, dtype=np.int64) + first_line
    has_cr = (ends > starts) & (buf[np.maximum(ends - 1, 0)] == ord("\r"))
    ends = ends - has_cr
    records = int(ends.size)

    def line_of(positions: IntArray) -> IntArray:
        return np.searchsorted(newlines, positions).astype(np.int64) + first_line

    if b"\x00" in raw:
        where = np.flatnonzero(buf == 0)
        problems.add(
            "NUL byte in the file",
            count=int(where.size),
            examples=[(int(x), None) for x in np.unique(line_of(where))[:MAX_EXAMPLES]],
        )
    if not raw.isascii():
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            problems.add("the file is not valid UTF-8",
                         examples=[(int(line_of(np.array([exc.start]))[0]), None)])
    if b"\r" in raw:
        cr = np.flatnonzero(buf == ord("\r"))
        followed = buf[np.minimum(cr + 1, buf.size - 1)] == ord("\n")
        stray = cr[~(followed & (cr + 1 < buf.size))]
        if stray.size:
            problems.add(
                "carriage return (CR) not followed by a line feed; use LF or CRLF line ends",
                count=int(stray.size),
                examples=[(int(x), None) for x in line_of(stray)[:MAX_EXAMPLES]],
            )

    def split_with_numpy() -> tuple[dict[str, pa.Array], IntArray]:
        nonlocal starts, ends, line_no
        length = ends - starts
        too_long = length > MAX_LINE_BYTES
        if too_long.any():
            problems.add(
                f"line longer than {MAX_LINE_BYTES} bytes",
                count=int(too_long.sum()),
                examples=[
                    (int(n), f"{int(size)} bytes")
                    for n, size in zip(line_no[too_long][:MAX_EXAMPLES],
                                       length[too_long][:MAX_EXAMPLES], strict=True)
                ],
            )
        keep = ~too_long
        starts, ends, line_no = starts[keep], ends[keep], line_no[keep]

        # Fields: commas inside kept lines, grouped by line (both are sorted, so one search).
        commas = np.flatnonzero(buf == ord(","))
        owner = np.searchsorted(ends, commas, side="left")
        inside = owner < ends.size
        inside[inside] &= commas[inside] >= starts[owner[inside]]
        commas, owner = commas[inside], owner[inside]
        per_line = np.bincount(owner, minlength=ends.size)
        k = len(names) - 1
        empty = starts == ends
        wrong = (per_line != k) & ~empty
        if empty.any():
            problems.add(
                "empty line",
                count=int(empty.sum()),
                examples=[(int(x), None) for x in line_no[empty][:MAX_EXAMPLES]],
            )
        if wrong.any():
            bad = np.flatnonzero(wrong)
            problems.add(
                f"wrong number of fields (expected {len(names)}: {','.join(names)})",
                count=int(bad.size),
                examples=[
                    (int(line_no[i]), _shown(raw[starts[i] : ends[i]])) for i in bad[:MAX_EXAMPLES]
                ],
            )
        good_idx = np.flatnonzero(~wrong & ~empty)
        first_comma = (np.cumsum(per_line) - per_line)[good_idx]
        line_no = line_no[good_idx]
        field_bounds: list[tuple[IntArray, IntArray]] = []
        for j in range(len(names)):
            f_start = starts[good_idx] if j == 0 else commas[first_comma + j - 1] + 1
            f_end = ends[good_idx] if j == k else commas[first_comma + j]
            field_bounds.append((f_start.astype(np.int64), f_end.astype(np.int64)))

        def column_strings(j: int) -> pa.Array:
            f_start, f_end = field_bounds[j]
            lengths = f_end - f_start
            # Mark each field's bytes (+1 at its start, −1 past its end) and keep them: the fields
            # of one column, back to back, are the data buffer of an Arrow binary array.
            delta = np.zeros(buf.size + 1, dtype=np.int8)
            delta[f_start] += 1
            delta[f_end] -= 1
            mask = np.cumsum(delta[:-1], dtype=np.int8).view(np.bool_)
            offsets = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
            array = pa.Array.from_buffers(
                pa.large_binary(), lengths.size, [None, pa.py_buffer(offsets),
                                                  pa.py_buffer(buf[mask])]
            )
            return array
        return {name: column_strings(j) for j, name in enumerate(names)}, line_no

    def split_with_arrow() -> tuple[dict[str, pa.Array], IntArray] | None:
        """Arrow's CSV reader splits clean blocks (ASCII, no NUL, no stray CR, no empty or
        over-long line) far faster; any row it finds malformed sends the block to numpy."""
        import pyarrow.csv as pa_csv

        if (b"\x00" in raw or not raw.isascii()
                or (b"\r" in raw and raw.count(b"\r") != raw.count(b"\r\n"))
                or records == 0 or int((ends - starts).min()) < 1
                or int((ends - starts).max()) > MAX_LINE_BYTES):
            return None
        invalid: list[object] = []

        def on_invalid(row: object) -> str:
            invalid.append(row)
            return "skip"

        table = pa_csv.read_csv(
            pa.py_buffer(raw),
            read_options=pa_csv.ReadOptions(column_names=list(names), use_threads=False),
            parse_options=pa_csv.ParseOptions(
                quote_char=False, ignore_empty_lines=False, newlines_in_values=False,
                invalid_row_handler=on_invalid,
            ),
            convert_options=pa_csv.ConvertOptions(
                column_types={name: pa.string() for name in names}, strings_can_be_null=False,
                quoted_strings_can_be_null=False, null_values=[],
            ),
        )
        if invalid or table.num_rows != records:
            return None
        return {name: table.column(name).combine_chunks() for name in names}, line_no

    split = split_with_arrow() or split_with_numpy()
    columns, line_no = split

    def examples(column: pa.Array, where: npt.NDArray[np.bool_]) -> list[tuple[int, str]]:
        idx = np.flatnonzero(where)[:MAX_EXAMPLES]
        return [(int(line_no[i]), _shown(column[int(i)].as_py())) for i in idx]

    def matches(column: pa.Array, pattern: str) -> npt.NDArray[np.bool_]:
        result: npt.NDArray[np.bool_] = pc.match_substring_regex(column, pattern).to_numpy(
            zero_copy_only=False
        )
        return result

    def cast(column: pa.Array, ok: npt.NDArray[np.bool_], kind: pa.DataType) -> npt.NDArray[Any]:
        zero = pa.scalar(b"0", pa.binary()).cast(column.type)
        safe = pc.if_else(pa.array(ok), column, zero)
        return np.asarray(pc.cast(pc.cast(safe, pa.large_string()), kind).to_numpy())

    def is_empty(column: pa.Array) -> npt.NDArray[np.bool_]:
        lengths = pc.binary_length(column).to_numpy(zero_copy_only=False)
        return np.asarray(lengths == 0)

    ids = columns[ROW_ID]
    empty_id = is_empty(ids)
    ok_id = _plain_ids(ids)
    if not ok_id.all():
        empty_id &= ~ok_id
        if empty_id.any():
            problems.add("empty cell", column=ROW_ID, count=int(empty_id.sum()),
                         examples=examples(ids, empty_id))
        bad_id = ~ok_id & ~empty_id
        if bad_id.any():
            problems.add(
                "not a plain non-negative integer (at most 18 digits; no sign, no leading zeros)",
                column=ROW_ID, count=int(bad_id.sum()), examples=examples(ids, bad_id),
            )
    row_id = cast(ids, ok_id, pa.int64())

    values: dict[str, FloatArray] = {}
    for name in names:
        if name == ROW_ID:
            continue
        column = columns[name]
        empty_cell = is_empty(column)
        ok = _plain_decimals(column)
        number = cast(column, ok, pa.float64()).astype(np.float64)
        if not ok.all():
            empty_cell &= ~ok
            if empty_cell.any():
                problems.add("empty cell", column=name, count=int(empty_cell.sum()),
                             examples=examples(column, empty_cell))
            negative = matches(column, _SIGNED_DECIMAL_RE) & ~ok
            negative &= pc.starts_with(column, "-").to_numpy(zero_copy_only=False)
            syntax = ~ok & ~empty_cell & ~negative
            if syntax.any():
                problems.add(
                    "not a plain decimal number (digits, at most one '.', optional exponent; "
                    "no sign, nan, inf, spaces or other characters)",
                    column=name, count=int(syntax.sum()), examples=examples(column, syntax),
                )
            if negative.any():
                problems.add("outside [0, 1] (negative)", column=name,
                             count=int(negative.sum()), examples=examples(column, negative))
        out_of_range = ok & ~((number >= 0.0) & (number <= 1.0))
        if out_of_range.any():
            problems.add("outside [0, 1] (or not finite)", column=name,
                         count=int(out_of_range.sum()), examples=examples(column, out_of_range))
        values[name] = number
    # Malformed ids take no part in the id checks (their rows count as missing).
    keep_id = np.flatnonzero(ok_id)
    return _Parsed(
        row_id[keep_id].astype(np.int64), {n: v[keep_id] for n, v in values.items()},
        line_no[keep_id], first_line, records,
    )


# Per character class, a weight whose sum over a string packs three counts (10 bits each: a
# field of a line of at most 1024 bytes with two commas has at most 1022 characters): dots,
# exponent characters (e E + -) and anything else.
_DOTS, _EXPONENT_CHARS, _OTHER_CHARS = 0, 10, 20
assert MAX_LINE_BYTES - 2 < 1 << 10, "the packed counts need wider fields"
_WEIGHT = np.full(256, 1 << _OTHER_CHARS, dtype=np.int32)
_WEIGHT[ord("0") : ord("9") + 1] = 0
_WEIGHT[ord(".")] = 1 << _DOTS
for _char in b"eE+-":
    _WEIGHT[_char] = 1 << _EXPONENT_CHARS


def _string_parts(column: Any) -> tuple[IntArray, npt.NDArray[np.uint8]]:
    """Offsets (len + 1, from 0) and character bytes of an Arrow (large) string/binary array."""
    import pyarrow as pa

    wide = pa.types.is_large_string(column.type) or pa.types.is_large_binary(column.type)
    _, offsets_buffer, data_buffer = column.buffers()
    raw_offsets = np.frombuffer(offsets_buffer, dtype=np.int64 if wide else np.int32)
    offsets = raw_offsets[column.offset : column.offset + len(column) + 1].astype(np.int64)
    data = (np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None
            else np.zeros(0, dtype=np.uint8))
    data = data[offsets[0] : offsets[-1]]
    offsets -= offsets[0]
    return offsets, data


def _class_counts(offsets: IntArray, data: npt.NDArray[np.uint8]) -> tuple[
    IntArray, IntArray, IntArray
]:
    """Per string: how many dots, exponent characters and other non-digits it holds."""
    if offsets.size < 2:
        zeros = np.zeros(0, dtype=np.int64)
        return zeros, zeros, zeros
    # A zero weight past the end keeps every start a valid index (trailing empty strings).
    weights = _WEIGHT[np.append(data, np.uint8(ord("0")))]
    # reduceat sums each [start_i, start_i+1); an empty string would give its neighbour's
    # first character instead of 0, so those are zeroed.
    packed = np.add.reduceat(weights, offsets[:-1]).astype(np.int64)
    packed[offsets[1:] == offsets[:-1]] = 0
    mask = (1 << 10) - 1
    return packed & mask, (packed >> _EXPONENT_CHARS) & mask, packed >> _OTHER_CHARS


def _plain_decimals(column: Any) -> npt.NDArray[np.bool_]:
    """Which strings are plain decimals (`_DECIMAL_RE`). Digits with at most one '.' are told
    apart with numpy; only strings with exponent characters go to the (slower) regex."""
    import pyarrow as pa
    import pyarrow.compute as pc

    offsets, data = _string_parts(column)
    lengths = np.diff(offsets)
    dots, exponent, other = _class_counts(offsets, data)
    ok: npt.NDArray[np.bool_] = (lengths > dots) & (other == 0) & (exponent == 0) & (dots <= 1)
    maybe = np.flatnonzero((exponent > 0) & (other == 0))
    if maybe.size:
        subset = column.take(pa.array(maybe))
        ok[maybe] = pc.match_substring_regex(subset, _DECIMAL_RE).to_numpy(zero_copy_only=False)
    return ok


def _plain_ids(column: Any) -> npt.NDArray[np.bool_]:
    """Which strings are plain non-negative integers (`_ROW_ID_RE`)."""
    offsets, data = _string_parts(column)
    lengths = np.diff(offsets)
    dots, exponent, other = _class_counts(offsets, data)
    ok: npt.NDArray[np.bool_] = (lengths > 0) & (lengths <= 18) & (dots + exponent + other == 0)
    first = np.append(data, np.uint8(0))[offsets[:-1]]
    ok &= (first != ord("0")) | (lengths == 1)
    return ok


# -------------------------------------------------------------------------------- Parquet


def _parse_parquet(path: Path, n_rows: int, cap: int, size: int, *, fast: bool = True
                   ) -> Predictions:
    """`fast=False` leaves the checks to the general code alone (which explains problems)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
        meta = parquet.metadata
    except (pa.ArrowException, OSError) as exc:
        raise _refuse(f"not a readable Parquet file: {exc}") from None
    names = tuple(parquet.schema_arrow.names)
    expected = " | ".join(",".join(h) for h in ACCEPTED_HEADERS)
    if len(set(names)) != len(names) or sorted(names) not in [sorted(h) for h in ACCEPTED_HEADERS]:
        raise _refuse(f"wrong columns {','.join(names)}; expected one of: {expected}")
    unpacked = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    if unpacked > cap or size > cap:
        raise _refuse(f"Parquet data is {max(unpacked, size)} bytes uncompressed; at most {cap} "
                      f"are allowed for {n_rows} rows")
    problems = _Problems()
    if meta.num_rows != n_rows:
        raise _refuse(f"the file has {meta.num_rows} rows; expected {n_rows}, one per test row")
    schema = parquet.schema_arrow
    for name in names:
        kind = schema.field(name).type
        if name == ROW_ID and not pa.types.is_integer(kind):
            problems.add(f"must be an integer column, not {kind}", column=name)
        if name != ROW_ID and not pa.types.is_floating(kind):
            problems.add(f"must be a floating-point column, not {kind}", column=name)
    problems.raise_if_any()
    try:
        table = parquet.read(columns=list(names), use_threads=True)
    except (pa.ArrowException, OSError) as exc:
        raise _refuse(f"unreadable Parquet data: {exc}") from None
    aligned = _parquet_fast(table, names, n_rows) if fast else None
    if aligned is not None:
        return _assemble(names, aligned)
    rows = np.arange(n_rows, dtype=np.int64) + 1

    def column_array(name: str, dtype: type[np.int64 | np.float64]) -> npt.NDArray[Any]:
        column = table.column(name)
        if column.null_count:
            nulls = column.is_null().to_numpy(zero_copy_only=False)
            problems.add("missing value (null)", column=name, count=int(column.null_count),
                         examples=[(int(r), None) for r in rows[nulls][:MAX_EXAMPLES]])
            column = column.fill_null(0)
        return np.asarray(column.to_numpy(), dtype=dtype)

    row_id = column_array(ROW_ID, np.int64)
    values: dict[str, FloatArray] = {}
    for name in (n for n in names if n != ROW_ID):
        number = column_array(name, np.float64)
        bad = ~((number >= 0.0) & (number <= 1.0)) | np.signbit(number)
        if bad.any():
            problems.add("outside [0, 1] (or not finite)", column=name, count=int(bad.sum()),
                         examples=[(int(r), repr(float(v))) for r, v in
                                   zip(rows[bad][:MAX_EXAMPLES], number[bad][:MAX_EXAMPLES],
                                       strict=True)])
        values[name] = number.astype(np.float64)
    parsed = _Parsed(row_id.astype(np.int64), values, None, 1, n_rows, unit="row")
    return _assemble(names, _aligned_or_raise(parsed, n_rows, problems))


# ------------------------------------------------------------------------------ alignment


def _aligned_or_raise(
    parsed: _Parsed, n_rows: int, problems: _Problems
) -> dict[str, FloatArray]:
    """Check that the ids are exactly 0 … n_rows−1 and reorder every column by id; raise with
    these problems and any found before."""
    ids = parsed.row_id
    records = parsed.records
    unit = parsed.unit

    def where(mask_or_index: npt.NDArray[np.generic]) -> IntArray:
        idx = np.flatnonzero(mask_or_index) if mask_or_index.dtype == np.bool_ else mask_or_index
        idx = idx.astype(np.int64)
        if parsed.lines is not None:
            return parsed.lines[idx]
        return idx + parsed.first_line

    if records == n_rows == ids.size and not problems:
        if parsed.in_order:
            return parsed.values
        # The usual case first, cheaply: ids in range and all distinct is a permutation.
        if ids.size and int(ids.min()) >= 0 and int(ids.max()) < n_rows:
            seen = np.zeros(n_rows, dtype=bool)
            seen[ids] = True
            if int(np.count_nonzero(seen)) == n_rows:
                return _scattered(parsed, n_rows)
    out_of_range = (ids < 0) | (ids >= n_rows)
    if out_of_range.any():
        problems.add(
            f"unknown row_id (test rows are 0 … {n_rows - 1})", column=ROW_ID,
            count=int(out_of_range.sum()),
            examples=[(int(line), str(int(v))) for line, v in zip(
                where(out_of_range)[:MAX_EXAMPLES], ids[out_of_range][:MAX_EXAMPLES], strict=True
            )],
        )
    in_range = ids[~out_of_range]
    seen = np.bincount(in_range, minlength=n_rows)
    dup_ids = np.flatnonzero(seen > 1)
    if dup_ids.size:
        first_dups = dup_ids[:MAX_EXAMPLES]
        examples: list[tuple[int | None, str | None]] = []
        for v in first_dups:
            at = where(np.flatnonzero(ids == v))
            examples.append((int(at[1]), f"{int(v)} (also on {unit} {int(at[0])})"))
        problems.add(
            "duplicate row_id", column=ROW_ID, count=int((seen[dup_ids] - 1).sum()),
            examples=examples,
        )
    missing = np.flatnonzero(seen == 0)
    if missing.size:
        problems.add(
            "missing row_id (every test row needs a prediction)", column=ROW_ID,
            count=int(missing.size),
            examples=[(None, str(int(v))) for v in missing[:MAX_EXAMPLES]],
        )
    if records != n_rows:
        problems.add(f"the file has {records} data {unit}s; expected {n_rows}, one per test row")
    problems.raise_if_any()
    return _scattered(parsed, n_rows)


def _scattered(parsed: _Parsed, n_rows: int) -> dict[str, FloatArray]:
    """Every column reordered so that index i holds row_id i (ids already checked)."""
    values: dict[str, FloatArray] = {}
    for name, column in parsed.values.items():
        aligned = np.empty(n_rows, dtype=np.float64)
        aligned[parsed.row_id] = column
        values[name] = aligned
    return values


def _assemble(names: tuple[str, ...], values: dict[str, FloatArray]) -> Predictions:
    ctr, cvr, ctcvr = derive_outputs(
        values["ctr"], cvr=values.get("cvr"), ctcvr=values.get("ctcvr")
    )
    return Predictions(ctr=ctr, cvr=cvr, ctcvr=ctcvr, columns=names)

