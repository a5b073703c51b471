"""Streaming multipart receive: capped while it streams, file parts spooled to the artifact dir.

FastAPI would parse a form before any dependency (and so before authentication) runs, into
spooled temp files with no size cap. The upload route has no body parameters instead: it
authenticates from the headers, then feeds `request.stream()` to python-multipart's streaming
parser here, counting bytes and hashing file parts as they are written.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request

from app.errors import AppError, TooLarge
from app.storage import disown, is_full, own

TEXT_FIELDS = ("country", "method", "outputs", "description")
FILE_FIELDS = ("file", "checkpoint")
MAX_TEXT_BYTES = 1024
MAX_HEADER_BYTES = 4096


class BadUpload(AppError):
    status, code = 400, "bad_upload"


class InvalidUpload(AppError):
    status, code = 422, "invalid_upload"


class StorageFull(AppError):
    status, code = 507, "storage_full"


def storage_full(exc: OSError) -> StorageFull:
    return StorageFull(f"the artifact store is full ({exc.strerror}): the upload was not "
                       "stored and used no quota; try again later or tell the organisers")


@dataclass
class UploadedFile:
    name: str
    filename: str | None
    path: Path
    size: int
    sha256: str


@dataclass
class Upload:
    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, UploadedFile] = field(default_factory=dict)

    def cleanup(self) -> None:
        for item in self.files.values():
            item.path.unlink(missing_ok=True)
            disown(item.path)


class _Receiver:
    """python-multipart callbacks building an Upload. Runs in a worker thread, chunk by chunk."""

    def __init__(self, tmp_dir: Path) -> None:
        self.tmp_dir = tmp_dir
        self.upload = Upload()
        self._open: list[Path] = []  # every temp file made, finished or not, for cleanup
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._headers: dict[str, bytes] = {}
        self._header_bytes = 0
        self._name: str | None = None
        self._filename: str | None = None
        self._text = bytearray()
        self._file: IO[bytes] | None = None
        self._hash: hashlib._Hash | None = None
        self._size = 0
        self._path: Path | None = None
        self.ended = False

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self._part_begin, "on_part_data": self._part_data,
            "on_part_end": self._part_end, "on_header_field": self._header_field_cb,
            "on_header_value": self._header_value_cb, "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished, "on_end": self._end,
        }

    def _part_begin(self) -> None:
        self._headers = {}
        self._header_bytes = 0
        self._name = None
        self._filename = None
        self._text = bytearray()

    def _header_field_cb(self, data: bytes, start: int, end: int) -> None:
        self._grow_header(end - start)
        self._header_field += data[start:end]

    def _header_value_cb(self, data: bytes, start: int, end: int) -> None:
        self._grow_header(end - start)
        self._header_value += data[start:end]

    def _grow_header(self, n: int) -> None:
        self._header_bytes += n
        if self._header_bytes > MAX_HEADER_BYTES:
            raise BadUpload(f"a multipart part's headers exceed {MAX_HEADER_BYTES} bytes")

    def _header_end(self) -> None:
        self._headers[bytes(self._header_field).decode("latin-1").lower()] = bytes(
            self._header_value)
        self._header_field = bytearray()
        self._header_value = bytearray()

    def _headers_finished(self) -> None:
        disposition = self._headers.get("content-disposition")
        if disposition is None:
            raise BadUpload("a multipart part has no Content-Disposition header")
        kind, options = parse_options_header(disposition)
        if kind != b"form-data" or b"name" not in options:
            raise BadUpload("a multipart part is not form-data with a name")
        name = options[b"name"].decode("utf-8", "replace")
        if name not in TEXT_FIELDS and name not in FILE_FIELDS:
            raise InvalidUpload(f"unknown form field {name[:50]!r}: expected "
                                f"{', '.join(TEXT_FIELDS + FILE_FIELDS)}")
        if name in self.upload.fields or name in self.upload.files:
            raise InvalidUpload(f"form field {name!r} appears more than once")
        self._name = name
        raw_filename = options.get(b"filename")
        self._filename = raw_filename.decode("utf-8", "replace")[:200] if raw_filename else None
        if name in FILE_FIELDS:
            fd, tmp = tempfile.mkstemp(dir=self.tmp_dir, prefix=f"upload-{name}-")
            self._path = Path(tmp)
            self._open.append(self._path)
            own(self._path)  # the periodic sweep leaves it alone while this upload lives
            self._file = os.fdopen(fd, "wb")
            self._hash = hashlib.sha256()
            self._size = 0

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self._file is not None and self._hash is not None:
            self._file.write(chunk)
            self._hash.update(chunk)
            self._size += len(chunk)
            return
        self._text += chunk
        if len(self._text) > MAX_TEXT_BYTES:
            raise InvalidUpload(f"form field {self._name!r} is longer than {MAX_TEXT_BYTES} bytes")

    def _part_end(self) -> None:
        assert self._name is not None
        if self._file is not None and self._hash is not None and self._path is not None:
            self._file.close()
            self._file = None
            self.upload.files[self._name] = UploadedFile(
                name=self._name, filename=self._filename, path=self._path, size=self._size,
                sha256=self._hash.hexdigest())
        else:
            try:
                self.upload.fields[self._name] = self._text.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidUpload(f"form field {self._name!r} is not UTF-8 text") from None

    def _end(self) -> None:
        self.ended = True

    def abort(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
        for path in self._open:
            path.unlink(missing_ok=True)
            disown(path)


def _boundary(request: Request) -> bytes:
    content_type, options = parse_options_header(request.headers.get("content-type"))
    if content_type != b"multipart/form-data":
        raise BadUpload("expected a multipart/form-data body")
    boundary = options.get(b"boundary")
    if not boundary or len(boundary) > 200:
        raise BadUpload("multipart/form-data without a usable boundary")
    return boundary


def check_declared_length(request: Request, max_bytes: int) -> None:
    """Refuse by Content-Length before reading anything, when the client sent one."""
    declared = request.headers.get("content-length")
    if declared is None:
        return
    if not declared.isdigit():
        raise BadUpload(f"invalid Content-Length {declared[:30]!r}")
    if int(declared) > max_bytes:
        raise TooLarge(f"the request body is {int(declared)} bytes; at most {max_bytes} "
                       "are accepted")


async def receive_upload(request: Request, tmp_dir: Path, max_bytes: int) -> Upload:
    """Read the whole body as multipart, capped at `max_bytes`; temp files removed on error."""
    check_declared_length(request, max_bytes)
    boundary = _boundary(request)
    receiver = _Receiver(tmp_dir)
    parser = MultipartParser(boundary, receiver.callbacks())  # type: ignore[arg-type]
    total = 0
    try:
        async for chunk in request.stream():
            total += len(chunk)
            if total > max_bytes:
                raise TooLarge(f"the request body exceeds {max_bytes} bytes")
            if chunk:
                await run_in_threadpool(parser.write, chunk)
        parser.finalize()
        if not receiver.ended:
            raise BadUpload("the multipart body ended before its closing boundary")
    except AppError:
        receiver.abort()
        raise
    except OSError as exc:
        receiver.abort()
        if is_full(exc):
            raise storage_full(exc) from None
        raise
    except ClientDisconnect:
        receiver.abort()
        raise BadUpload("the client disconnected during the upload") from None
    except FormParserError as exc:
        # Malformed framing. Anything else is a bug of ours: it propagates (500, logged).
        receiver.abort()
        raise BadUpload(f"malformed multipart body: {exc}") from None
    except BaseException:
        receiver.abort()
        raise
    return receiver.upload
