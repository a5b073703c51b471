"""The app factory: health, the OpenAPI reference, the error shape."""

from __future__ import annotations

from typing import Any


def test_health_reports_database_and_queue_depth(client: Any) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    # The keys health clients read stay as they were; liveness adds its own beside them.
    assert {k: body[k] for k in ("status", "database", "queue", "queue_depth")} == {
        "status": "ok", "database": "ok", "queue": "ok", "queue_depth": 0}
    assert body["jobs"] == {"queued": 0, "running": 0, "lapsed": 0}
    assert body["problems"] == []
    # An immediate queue runs jobs in the API itself: no consumer to ask about.
    assert body["consumers_alive"] is None
    assert body["disk"]["ok"] is True and body["disk"]["free_bytes"] > 0


def test_health_says_degraded_while_the_queue_is_unreachable(settings: Any) -> None:
    import socket

    from fastapi.testclient import TestClient

    from app.main import create_app

    with socket.socket() as sock:  # a port where no Redis listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dead_queue = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{port}/0"})
    with TestClient(create_app(dead_queue)) as client:
        response = client.get("/health")
    # The API and its database still serve (uploads are accepted and enqueued later): not 503.
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["database"] == "ok"
    assert body["queue"] == "error: ConnectionError"
    assert body["queue_depth"] is None


def test_openapi_documents_the_multipart_upload_fields(client: Any) -> None:
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/api/v1/submissions"]["post"]["requestBody"]
    fields = body["content"]["multipart/form-data"]["schema"]["properties"]
    assert set(fields) == {"country", "method", "file", "checkpoint", "outputs", "description"}


def test_openapi_documents_error_responses(client: Any) -> None:
    spec = client.get("/openapi.json").json()
    responses = spec["paths"]["/api/v1/submissions"]["post"]["responses"]
    assert {"401", "413", "422", "429"} <= set(responses)


def test_unknown_route_answers_with_the_error_shape(client: Any) -> None:
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_bad_query_parameter_is_422_with_the_error_shape(client: Any, make_team: Any) -> None:
    _, token = make_team("alpha")
    response = client.get("/api/v1/submissions?limit=0",
                          headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 422
    assert response.json()["error"] == "invalid"


def test_uploaded_submission_reaches_the_leaderboard_with_sklearn_aucs(
        client: Any, make_team: Any, make_predictions: Any, prepared: Any) -> None:
    import numpy as np
    from sklearn.metrics import roc_auc_score

    _, token = make_team("alpha")
    body, values = make_predictions(seed=5)
    response = client.post("/api/v1/submissions", headers={"Authorization": f"Bearer {token}"},
                           files={"file": ("p.csv", body)},
                           data={"country": "NL", "method": "e2e"})
    sid = response.json()["id"]
    board = client.get("/api/v1/leaderboard/NL").json()
    entry = next(e for e in board["entries"] if e["team"] == "alpha")
    public = np.asarray(prepared.public, dtype=bool)
    click = np.asarray(prepared.click).astype(bool)
    cell = entry["cells"]["NL"]["ctr"]
    assert cell["submission_id"] == sid
    # The board rounds to 6 decimals.
    assert cell["auc"] == round(roc_auc_score(click[public], values["ctr"][public]), 6)
    page = client.get("/")
    assert page.status_code == 200 and "alpha" in page.text
