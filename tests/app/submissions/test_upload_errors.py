"""Where the upload path's errors go (app/submissions/upload.py, service.create)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient


def upload(client: TestClient, token: str, body: bytes) -> Any:
    return client.post("/api/v1/submissions", headers={"Authorization": f"Bearer {token}"},
                       data={"country": "NL", "method": "m"}, files={"file": ("p.csv", body)})


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_bug_in_the_upload_parser_is_a_500_not_a_bad_request(
        settings: Any, queue: Any, make_team: Any, make_predictions: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from app.main import create_app
    from app.submissions import upload as upload_module

    def bug(self: Any) -> None:
        raise KeyError("a bug of ours")

    monkeypatch.setattr(upload_module._Receiver, "_part_begin", bug)
    _, token = make_team("alpha")
    with TestClient(create_app(settings, queue), raise_server_exceptions=False) as client:
        response = upload(client, token, make_predictions()[0])
    assert response.status_code == 500
    assert list(settings.artifacts.joinpath("tmp").iterdir()) == []


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_malformed_multipart_framing_is_still_a_400(client: TestClient,
                                                    make_team: Any) -> None:
    _, token = make_team("alpha")
    response = client.post(
        "/api/v1/submissions", content=b"--b\r\nno headers end here",
        headers={"Authorization": f"Bearer {token}",
                 "Content-Type": "multipart/form-data; boundary=b"})
    assert response.status_code == 400
    assert response.json()["error"] == "bad_upload"


def test_the_files_reach_the_disk_before_the_team_lock_is_taken(
        client: TestClient, make_team: Any, make_predictions: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from app.storage import ArtifactStore
    from app.submissions import repository

    calls: list[str] = []
    sync, lock = ArtifactStore.sync, repository.lock_team

    def recorded_sync(path: Any) -> None:
        calls.append("sync")
        sync(path)

    def recorded_lock(session: Any, team_id: int) -> None:
        calls.append("lock")
        lock(session, team_id)

    monkeypatch.setattr(ArtifactStore, "sync", staticmethod(recorded_sync))
    monkeypatch.setattr(repository, "lock_team", recorded_lock)
    _, token = make_team("alpha")
    response = upload(client, token, make_predictions()[0])
    assert response.status_code == 202, response.text
    # (The worker's own store write, the predictions, comes after: the queue is immediate.)
    assert calls[:2] == ["sync", "lock"]
