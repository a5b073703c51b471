"""The service's HTTP client: `leaderboard submit` and `status`, the demo, and the baselines'
registration all talk to the service through it."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO, Any

import httpx

SUBMISSIONS_PATH = "/api/v1/submissions"
FINISHED_STATES = ("scored", "failed")


class ClientError(Exception):
    """The server refused the request; `status` and `body` say why."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"HTTP {status}: {describe_error(body)}")
        self.status = status
        self.body = body


def _problem_line(problem: Any) -> str:
    """One problem of a refusal: where (line, column, or the field), what, how often."""
    if not isinstance(problem, dict):
        return str(problem)
    where = []
    if problem.get("row") is not None:
        where.append(f"line {problem['row']}")
    if problem.get("column"):
        where.append(f"column {problem['column']}")
    if problem.get("loc"):
        where.append(".".join(str(part) for part in problem["loc"]))
    text = (", ".join(where) + ": " if where else "") + str(problem.get("message", ""))
    if problem.get("value") is not None:
        text += f" (value {problem['value']!r})"
    if (problem.get("count") or 1) > 1:
        text += f" — {problem['count']} times"
    return text


def describe_error(body: Any) -> str:
    """A refusal's body as readable lines: `code: what`, then each problem on its own line."""
    if isinstance(body, dict) and "error" in body:
        detail = body.get("detail")
        head, problems = f"{body['error']}", []
        if isinstance(detail, str):
            head += f": {detail}"
        elif isinstance(detail, list):
            problems = detail
        elif isinstance(detail, dict):
            extra = {k: v for k, v in detail.items() if k not in ("message", "problems")}
            if detail.get("message"):
                head += f": {detail['message']}"
            problems = list(detail.get("problems") or [])
            if extra:
                head += " (" + ", ".join(f"{k} {v}" for k, v in extra.items()) + ")"
        elif detail is not None:
            head += f": {detail}"
        return "\n".join([head, *(f"  - {_problem_line(p)}" for p in problems)])
    if isinstance(body, str):
        return body[:500]
    return json.dumps(body, ensure_ascii=False)[:500]


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


class Client:
    """A team's view of one server. `http` carries the base URL: any httpx.Client, including
    FastAPI's TestClient."""

    def __init__(self, http: httpx.Client, token: str) -> None:
        self.http = http
        self.token = token

    @property
    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def submit(self, country: str, method: str, file: Path | None = None,
               checkpoint: Path | None = None, outputs: str | None = None,
               idempotency_key: str | None = None,
               on_progress: Callable[[int], None] | None = None,
               timeout: float = 600.0) -> dict[str, Any]:
        """Upload a prediction file and/or a checkpoint; returns the server's answer (id,
        state). The files are streamed from disk, never read into memory whole."""
        if file is None and checkpoint is None:
            raise ValueError("give a prediction file, a checkpoint, or both")
        data = {"country": country, "method": method}
        if outputs is not None:
            data["outputs"] = outputs
        headers = self._auth
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
            response = self.http.post(SUBMISSIONS_PATH, data=data, files=files,
                                      headers=headers, timeout=timeout)
        result: dict[str, Any] = _check(response)
        return result

    def status(self, submission_id: int | None = None, timeout: float = 60.0) -> Any:
        """One submission (with its scores) or the caller's submissions."""
        path = SUBMISSIONS_PATH + (f"/{submission_id}" if submission_id is not None else "")
        return _check(self.http.get(path, headers=self._auth, timeout=timeout))

    def select(self, submission_id: int, selected: bool = True,
               timeout: float = 60.0) -> dict[str, Any]:
        """Count a submission for the final ranking (or stop counting it)."""
        method = "PUT" if selected else "DELETE"
        result: dict[str, Any] = _check(self.http.request(
            method, f"{SUBMISSIONS_PATH}/{submission_id}/selection", headers=self._auth,
            timeout=timeout))
        return result

    def wait_until_finished(self, submission_id: int, timeout_s: float = 600.0,
                            poll_s: float = 2.0) -> dict[str, Any]:
        """Poll a submission until it is scored or failed, or the time is up."""
        deadline = time.monotonic() + timeout_s
        while True:
            body: dict[str, Any] = self.status(submission_id)
            if body.get("state") in FINISHED_STATES or time.monotonic() >= deadline:
                return body
            time.sleep(poll_s)

    def request_verification(self, submission_id: int,
                             tolerance: float | None = None) -> dict[str, Any]:
        """Organisers: run the submission's checkpoint and compare it with its file."""
        body = {"tolerance": tolerance} if tolerance is not None else None
        result: dict[str, Any] = _check(self.http.post(
            f"{SUBMISSIONS_PATH}/{submission_id}/verify", headers=self._auth, json=body))
        return result


@contextmanager
def connect(server: str, token: str) -> Iterator[Client]:
    with httpx.Client(base_url=server.rstrip("/")) as http:
        yield Client(http, token)
