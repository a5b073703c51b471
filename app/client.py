"""The participants' HTTP client behind `leaderboard submit` and `leaderboard status`."""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any

import httpx


class ClientError(Exception):
    """The server refused the request; `status` and `body` say why."""

    def __init__(self, status: int, body: Any) -> None:
        detail = body.get("detail") if isinstance(body, dict) else body
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.body = body


class _ProgressFile:
    """A read-only file that reports each chunk httpx reads from it while streaming."""

    def __init__(self, file: IO[bytes], on_read: Callable[[int], None]) -> None:
        self._file = file
        self._on_read = on_read

    def read(self, size: int = -1) -> bytes:
        chunk = self._file.read(size)
        self._on_read(len(chunk))
        return chunk

    def fileno(self) -> int:
        return self._file.fileno()

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


def _check(response: httpx.Response) -> Any:
    body = _json(response)
    if response.status_code >= 400:
        raise ClientError(response.status_code, body)
    return body


def submit(server: str, token: str, country: str, method: str, file: Path | None = None,
           checkpoint: Path | None = None, outputs: str | None = None,
           idempotency_key: str | None = None,
           on_progress: Callable[[int], None] | None = None,
           timeout: float = 600.0) -> dict[str, Any]:
    """Upload a prediction file and/or a checkpoint; returns the server's answer (id, state).

    The files are streamed from disk, never read into memory whole."""
    if file is None and checkpoint is None:
        raise ValueError("give a prediction file, a checkpoint, or both")
    data = {"country": country, "method": method}
    if outputs is not None:
        data["outputs"] = outputs
    headers = {"Authorization": f"Bearer {token}"}
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    report = on_progress or (lambda _n: None)
    with ExitStack() as stack:
        files: dict[str, tuple[str, Any, str]] = {}
        for field, path in (("file", file), ("checkpoint", checkpoint)):
            if path is not None:
                handle = stack.enter_context(open(path, "rb"))
                files[field] = (Path(path).name, _ProgressFile(handle, report),
                                "application/octet-stream")
        response = httpx.post(f"{server.rstrip('/')}/api/v1/submissions", data=data,
                              files=files, headers=headers, timeout=timeout)
    result: dict[str, Any] = _check(response)
    return result


def status(server: str, token: str, submission_id: int | None = None,
           timeout: float = 60.0) -> Any:
    """One submission (with its scores) or the caller's submissions."""
    path = "/api/v1/submissions" + (f"/{submission_id}" if submission_id is not None else "")
    response = httpx.get(f"{server.rstrip('/')}{path}",
                         headers={"Authorization": f"Bearer {token}"}, timeout=timeout)
    return _check(response)
