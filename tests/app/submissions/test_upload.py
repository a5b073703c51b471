"""The streamed, capped multipart receive, against a real uvicorn server over a socket."""

from __future__ import annotations

import http.client
from typing import Any

from sqlalchemy import func, select

from app.db import make_engine, session_factory
from app.models import Submission

BOUNDARY = "lbtestboundary"


def _head(name: str, filename: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    return (f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n").encode()


def chunked_upload(address: tuple[str, int], token: str | None, file_bytes: int,
                   chunk: int = 256 << 10) -> tuple[int, dict[str, Any]]:
    """POST a multipart body with Transfer-Encoding: chunked (no Content-Length)."""
    import json

    conn = http.client.HTTPConnection(*address, timeout=30)
    conn.putrequest("POST", "/api/v1/submissions")
    conn.putheader("Content-Type", f"multipart/form-data; boundary={BOUNDARY}")
    conn.putheader("Transfer-Encoding", "chunked")
    if token:
        conn.putheader("Authorization", f"Bearer {token}")
    conn.endheaders()

    def send(data: bytes) -> None:
        conn.send(f"{len(data):x}\r\n".encode() + data + b"\r\n")

    try:
        send(_head("country") + b"NL\r\n" + _head("method") + b"m\r\n"
             + _head("file", "p.csv"))
        sent = 0
        block = b"0" * chunk
        while sent < file_bytes:
            send(block)
            sent += len(block)
        send(f"\r\n--{BOUNDARY}--\r\n".encode())
        conn.send(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server answered and closed early: read that answer
    response = conn.getresponse()
    body = json.loads(response.read() or b"{}")
    conn.close()
    return response.status, body


def count_submissions(settings: Any) -> int:
    engine = make_engine(settings)
    with session_factory(engine)() as session:
        n = session.execute(select(func.count()).select_from(Submission)).scalar_one()
    engine.dispose()
    return int(n)


def test_chunked_body_over_the_cap_is_413_leaving_no_temp_file_or_row(
        live_server: tuple[str, int], make_team: Any, settings: Any) -> None:
    _, token = make_team("alpha")
    status, body = chunked_upload(live_server, token, 2 * settings.max_upload_bytes)
    assert status == 413
    assert body["error"] == "payload_too_large"
    assert list((settings.artifacts / "tmp").iterdir()) == []
    assert count_submissions(settings) == 0


def test_huge_chunked_body_without_token_is_401_before_anything_is_written(
        live_server: tuple[str, int], settings: Any) -> None:
    status, _ = chunked_upload(live_server, None, 2 * settings.max_upload_bytes)
    assert status == 401
    tmp = settings.artifacts / "tmp"
    assert not tmp.exists() or list(tmp.iterdir()) == []


def test_chunked_body_under_the_cap_is_received(live_server: tuple[str, int], make_team: Any,
                                                settings: Any) -> None:
    _, token = make_team("alpha")
    # Received whole, then refused by validation (zeros are no prediction file): 422, not 413.
    status, body = chunked_upload(live_server, token, 64 << 10, chunk=16 << 10)
    assert status == 422
    assert body["error"] == "invalid_file"
    assert list((settings.artifacts / "tmp").iterdir()) == []


def test_truncated_multipart_body_is_400(live_server: tuple[str, int], make_team: Any,
                                         settings: Any) -> None:
    _, token = make_team("alpha")
    data = _head("country") + b"NL\r\n" + _head("file", "p.csv") + b"row_id,ctr,cvr\n"
    conn = http.client.HTTPConnection(*live_server, timeout=30)
    conn.request("POST", "/api/v1/submissions", body=data, headers={
        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
        "Authorization": f"Bearer {token}"})
    response = conn.getresponse()
    assert response.status == 400
    response.read()
    conn.close()
    assert list((settings.artifacts / "tmp").iterdir()) == []


def test_duplicate_form_field_is_422(live_server: tuple[str, int], make_team: Any) -> None:
    _, token = make_team("alpha")
    data = (_head("country") + b"NL\r\n" + _head("country") + b"ES\r\n"
            + f"--{BOUNDARY}--\r\n".encode())
    conn = http.client.HTTPConnection(*live_server, timeout=30)
    conn.request("POST", "/api/v1/submissions", body=data, headers={
        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
        "Authorization": f"Bearer {token}"})
    response = conn.getresponse()
    assert response.status == 422
    assert b"more than once" in response.read()
    conn.close()


def test_concurrent_uploads_at_the_quota_accept_exactly_the_quota(
        live_server: tuple[str, int], make_team: Any, make_predictions: Any,
        settings: Any) -> None:
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    _, token = make_team("alpha")
    body = make_predictions()[0]
    url = f"http://{live_server[0]}:{live_server[1]}/api/v1/submissions"

    def post(_: int) -> tuple[int, str | None]:
        response = httpx.post(url, headers={"Authorization": f"Bearer {token}"},
                              files={"file": ("p.csv", body)},
                              data={"country": "NL", "method": "m"}, timeout=60)
        return response.status_code, (response.json().get("error")
                                      if response.status_code != 202 else None)

    attempts = settings.daily_quota * 2
    with ThreadPoolExecutor(attempts) as pool:
        answers = list(pool.map(post, range(attempts)))
    # One upload in flight per team (app/submissions/budget.py): uploads that overlap one
    # still streaming are refused as such; the quota is never passed either way.
    accepted = [a for a in answers if a[0] == 202]
    assert {code for status, code in answers if status != 202} <= {
        "quota_exceeded", "upload_in_flight"}, answers
    assert all(status in (202, 429) for status, _ in answers), answers
    assert 1 <= len(accepted) <= settings.daily_quota
    assert count_submissions(settings) == len(accepted)
    # Sent one after another, exactly the quota's worth are accepted.
    more = [post(i) for i in range(attempts)]
    assert [s for s, _ in more].count(202) == settings.daily_quota - len(accepted)
    assert count_submissions(settings) == settings.daily_quota
