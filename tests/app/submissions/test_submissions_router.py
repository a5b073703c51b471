"""The submissions API through the app (TestClient, queue in immediate mode), on SQLite and
PostgreSQL: upload → scored with sklearn's AUCs, and each refusal."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from sqlalchemy import func, select, update

from app import challenge
from app.db import make_engine, session_factory
from app.models import Score, Submission


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def upload(client: Any, token: str, body: bytes, *, country: str = "NL",
           method: str = "mine", headers: dict[str, str] | None = None,
           extra: dict[str, str] | None = None) -> Any:
    files = {"file": ("predictions.csv", body, "text/csv")}
    return client.post("/api/v1/submissions", headers={**bearer(token), **(headers or {})},
                       files=files, data={"country": country, "method": method, **(extra or {})})


def rows(settings: Any, model: Any) -> int:
    engine = make_engine(settings)
    try:
        with session_factory(engine)() as session:
            return int(session.execute(select(func.count()).select_from(model)).scalar_one())
    finally:
        engine.dispose()


def expected_aucs(prepared: Any, values: dict[str, np.ndarray], split: str) -> dict[str, float]:
    click = np.asarray(prepared.click).astype(bool)
    conversion = np.asarray(prepared.conversion).astype(bool)
    public = np.asarray(prepared.public).astype(bool)
    part = {"public": public, "private": ~public, "full": np.ones_like(public)}[split]
    ctr, cvr = values["ctr"], values["cvr"]
    return {
        "ctr": roc_auc_score(click[part], ctr[part]),
        "cvr": roc_auc_score(conversion[part & click], cvr[part & click]),
        "ctcvr": roc_auc_score(conversion[part], (ctr * cvr)[part]),
    }


def test_uploaded_file_is_scored_with_sklearn_aucs(client: Any, make_team: Any,
                                                   make_predictions: Any,
                                                   prepared: Any) -> None:
    _, token = make_team("alpha")
    body, values = make_predictions(seed=1)
    response = upload(client, token, body)
    assert response.status_code == 202, response.text
    assert response.json()["state"] == "queued"
    result = client.get(f"/api/v1/submissions/{response.json()['id']}", headers=bearer(token))
    assert result.status_code == 200
    data = result.json()
    assert data["state"] == "scored"
    assert set(data["scores"]) == {"public"}
    for task, auc in expected_aucs(prepared, values, "public").items():
        assert data["scores"]["public"][task]["auc"] == pytest.approx(auc, abs=1e-12)


def test_organiser_sees_every_split_before_the_reveal(client: Any, make_team: Any,
                                                      make_predictions: Any,
                                                      prepared: Any) -> None:
    _, token = make_team("alpha")
    _, organiser = make_team("org", organiser=True)
    body, values = make_predictions(seed=2)
    sid = upload(client, token, body).json()["id"]
    data = client.get(f"/api/v1/submissions/{sid}", headers=bearer(organiser)).json()
    assert set(data["scores"]) == {"public", "private", "full"}
    for split in ("private", "full"):
        for task, auc in expected_aucs(prepared, values, split).items():
            assert data["scores"][split][task]["auc"] == pytest.approx(auc, abs=1e-12)


def test_participant_sees_private_scores_after_the_reveal(client: Any, make_team: Any,
                                                          make_predictions: Any,
                                                          settings: Any) -> None:
    _, token = make_team("alpha")
    sid = upload(client, token, make_predictions()[0]).json()["id"]
    engine = make_engine(settings)
    with session_factory(engine)() as session:
        challenge.state(session).revealed = True
        session.commit()
    engine.dispose()
    data = client.get(f"/api/v1/submissions/{sid}", headers=bearer(token)).json()
    assert set(data["scores"]) == {"public", "private", "full"}


def test_gzip_csv_is_accepted(client: Any, make_team: Any, make_predictions: Any) -> None:
    _, token = make_team("alpha")
    response = upload(client, token, gzip.compress(make_predictions()[0]))
    assert response.status_code == 202, response.text
    data = client.get(f"/api/v1/submissions/{response.json()['id']}",
                      headers=bearer(token)).json()
    assert (data["state"], data["file_format"]) == ("scored", "csv.gz")


def test_upload_without_token_is_401(client: Any, make_predictions: Any,
                                     settings: Any) -> None:
    response = client.post("/api/v1/submissions", files={"file": ("p.csv", b"x")},
                           data={"country": "NL", "method": "m"})
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert rows(settings, Submission) == 0


def test_unknown_token_is_401(client: Any) -> None:
    response = upload(client, "mtme_" + "x" * 43, b"row_id,ctr,cvr\n")
    assert response.status_code == 401


def test_bad_file_is_422_listing_each_problem(client: Any, make_team: Any, prepared: Any,
                                              settings: Any) -> None:
    _, token = make_team("alpha")
    lines = ["row_id,ctr,cvr"] + [f"{i},0.5,0.5" for i in range(prepared.n_rows)]
    lines[3] = "2,nan,0.5"
    lines[10] = "9,0.5,1.5"
    response = upload(client, token, ("\n".join(lines) + "\n").encode())
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "invalid_file"
    problems = body["detail"]["problems"]
    rows_named = {p["row"] for p in problems}
    assert {4, 11} <= rows_named
    assert {p["value"] for p in problems} >= {"nan", "1.5"}
    assert rows(settings, Submission) == 0
    assert list((settings.artifacts / "tmp").iterdir()) == []


def test_refused_file_costs_no_quota(client: Any, make_team: Any, make_predictions: Any,
                                     settings: Any) -> None:
    _, token = make_team("alpha")
    for _ in range(settings.daily_quota + 2):
        assert upload(client, token, b"row_id,ctr,cvr\n0,0.1,0.1\n").status_code == 422
    assert upload(client, token, make_predictions()[0]).status_code == 202


def test_quota_exceeded_is_429_with_reset_time(client: Any, make_team: Any,
                                               make_predictions: Any, settings: Any) -> None:
    _, token = make_team("alpha")
    body = make_predictions()[0]
    for _ in range(settings.daily_quota):
        assert upload(client, token, body).status_code == 202
    response = upload(client, token, body)
    assert response.status_code == 429
    detail = response.json()["detail"]
    assert detail["limit"] == settings.daily_quota
    assert detail["resets_at"].endswith("T00:00:00+00:00")
    assert 0 < int(response.headers["Retry-After"]) <= 86401
    assert rows(settings, Submission) == settings.daily_quota


def test_failed_submissions_do_not_count_towards_the_quota(client: Any, make_team: Any,
                                                          make_predictions: Any,
                                                          settings: Any) -> None:
    _, token = make_team("alpha")
    body = make_predictions()[0]
    for _ in range(settings.daily_quota):
        assert upload(client, token, body).status_code == 202
    engine = make_engine(settings)
    with session_factory(engine)() as session:
        session.execute(update(Submission).values(state="failed"))
        session.commit()
    engine.dispose()
    assert upload(client, token, body).status_code == 202


def test_baseline_teams_have_no_quota(client: Any, make_team: Any, make_predictions: Any,
                                      settings: Any) -> None:
    _, token = make_team("baselines", baseline=True)
    body = make_predictions()[0]
    for _ in range(settings.daily_quota + 1):
        assert upload(client, token, body).status_code == 202


def test_another_teams_submission_is_404(client: Any, make_team: Any,
                                         make_predictions: Any) -> None:
    _, alpha = make_team("alpha")
    _, beta = make_team("beta")
    sid = upload(client, alpha, make_predictions()[0]).json()["id"]
    response = client.get(f"/api/v1/submissions/{sid}", headers=bearer(beta))
    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "detail": f"no submission {sid}"}
    assert client.get("/api/v1/submissions", headers=bearer(beta)).json() == []


def test_same_idempotency_key_gives_the_same_submission_and_one_quota_unit(
        client: Any, make_team: Any, make_predictions: Any, settings: Any) -> None:
    _, token = make_team("alpha")
    body = make_predictions()[0]
    key = {"Idempotency-Key": "run-42"}
    first = upload(client, token, body, headers=key)
    second = upload(client, token, body, headers=key)
    assert first.status_code == second.status_code == 202
    assert second.json() == {**first.json(), "state": "scored", "duplicate": True}
    assert rows(settings, Submission) == 1
    me = client.get("/api/v1/me", headers=bearer(token)).json()
    assert me["quota"]["used"] == 1


def test_same_idempotency_key_from_another_team_is_a_new_submission(
        client: Any, make_team: Any, make_predictions: Any, settings: Any) -> None:
    _, alpha = make_team("alpha")
    _, beta = make_team("beta")
    body = make_predictions()[0]
    a = upload(client, alpha, body, headers={"Idempotency-Key": "k"}).json()
    b = upload(client, beta, body, headers={"Idempotency-Key": "k"}).json()
    assert a["id"] != b["id"]


def test_country_without_a_test_set_is_409(client: Any, make_team: Any,
                                           make_predictions: Any) -> None:
    _, token = make_team("alpha")
    response = upload(client, token, make_predictions()[0], country="FR")
    assert response.status_code == 409
    assert response.json()["error"] == "no_test_set"
    assert "FR" in response.json()["detail"]


def test_unknown_country_is_422(client: Any, make_team: Any, make_predictions: Any) -> None:
    _, token = make_team("alpha")
    response = upload(client, token, make_predictions()[0], country="XX")
    assert response.status_code == 422
    assert "country" in response.json()["detail"]


def test_missing_file_and_checkpoint_is_422(client: Any, make_team: Any) -> None:
    _, token = make_team("alpha")
    response = client.post("/api/v1/submissions", headers=bearer(token),
                           files={"country": (None, "NL"), "method": (None, "m")})
    assert response.status_code == 422
    assert response.json()["error"] == "missing_field"


def test_unknown_form_field_is_422(client: Any, make_team: Any,
                                   make_predictions: Any) -> None:
    _, token = make_team("alpha")
    response = upload(client, token, make_predictions()[0], extra={"team": "someone"})
    assert response.status_code == 422
    assert "team" in response.json()["detail"]


def test_body_over_the_cap_with_content_length_is_413_leaving_nothing(
        client: Any, make_team: Any, settings: Any) -> None:
    _, token = make_team("alpha")
    big = b"0" * (settings.max_upload_bytes + 1)
    response = upload(client, token, big)
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"
    assert rows(settings, Submission) == 0
    assert list((settings.artifacts / "tmp").iterdir()) == []


def test_non_multipart_body_is_400(client: Any, make_team: Any) -> None:
    _, token = make_team("alpha")
    response = client.post("/api/v1/submissions", headers=bearer(token),
                           content=b'{"country": "NL"}')
    assert response.status_code == 400
    assert response.json()["error"] == "bad_upload"


def test_artifacts_are_stored_once_by_content(client: Any, make_team: Any,
                                              make_predictions: Any, settings: Any) -> None:
    _, token = make_team("alpha")
    body = make_predictions()[0]
    upload(client, token, body)
    upload(client, token, body)
    stored = [p for p in Path(settings.artifacts).rglob("*")
              if p.is_file() and p.parent.name != "tmp"]
    # one prediction file and one predictions .npz, each once
    assert len(stored) == 2


def test_list_shows_own_submissions_newest_first(client: Any, make_team: Any,
                                                 make_predictions: Any) -> None:
    _, token = make_team("alpha")
    body = make_predictions()[0]
    ids = [upload(client, token, body, method=f"m{i}").json()["id"] for i in range(2)]
    listed = client.get("/api/v1/submissions", headers=bearer(token)).json()
    assert [s["id"] for s in listed] == ids[::-1]
    assert [s["method"] for s in listed] == ["m1", "m0"]


def test_verify_is_for_organisers_only(client: Any, make_team: Any,
                                       make_predictions: Any) -> None:
    _, token = make_team("alpha")
    sid = upload(client, token, make_predictions()[0]).json()["id"]
    response = client.post(f"/api/v1/submissions/{sid}/verify", headers=bearer(token))
    assert response.status_code == 403


def test_verify_without_checkpoint_is_409(client: Any, make_team: Any,
                                          make_predictions: Any) -> None:
    _, token = make_team("alpha")
    _, organiser = make_team("org", organiser=True)
    sid = upload(client, token, make_predictions()[0]).json()["id"]
    response = client.post(f"/api/v1/submissions/{sid}/verify", headers=bearer(organiser))
    assert response.status_code == 409
    assert response.json()["error"] == "no_checkpoint"


def test_scores_are_one_row_per_split_and_task(client: Any, make_team: Any,
                                               make_predictions: Any, settings: Any) -> None:
    _, token = make_team("alpha")
    upload(client, token, make_predictions()[0])
    assert rows(settings, Score) == 9


def test_upload_holds_no_db_connection_while_its_file_is_validated(
        client: Any, make_team: Any, make_predictions: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Validation waits for a worker thread; a request holding a pooled connection meanwhile,
    # while every thread waits for a connection, stalled the whole service under load.
    from app.submissions import service

    _, token = make_team("alpha")
    pool = client.app.state.engine.pool
    held: list[int] = []
    real_validate = service.validate

    def validate(settings: Any, upload: Any) -> Any:
        held.append(pool.checkedout())
        return real_validate(settings, upload)

    monkeypatch.setattr(service, "validate", validate)
    response = upload(client, token, make_predictions(seed=4)[0],
                      headers={"Idempotency-Key": "pool-1"})
    assert response.status_code == 202, response.text
    assert held == [0]
