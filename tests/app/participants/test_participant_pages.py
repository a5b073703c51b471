"""The participants' pages on the real app (TestClient, immediate queue) on SQLite and
PostgreSQL: sign in, /me and its JSON, the form upload, rounding, the score history."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.db import make_engine, session_factory
from app.models import Score, Submission


def sign_in(client: Any, token: str) -> TestClient:
    tab = TestClient(client.app, follow_redirects=False)
    response = tab.post("/login", data={"token": token})
    assert response.status_code == 303 and response.headers["location"] == "/me"
    return tab


def csrf_of(tab: TestClient) -> str:
    found = re.search(r'data-csrf="([0-9a-f]{64})"', tab.get("/me").text)
    assert found
    return found.group(1)


def upload(tab: TestClient, body: bytes, method: str = "form-model", **fields: str) -> Any:
    return tab.post("/me/submissions", headers={"X-CSRF-Token": csrf_of(tab)},
                    files={"file": ("p.csv", body, "text/csv")},
                    data={"country": "NL", "method": method} | fields)


def test_login_page_has_one_token_field_and_a_bad_token_is_told(client: Any) -> None:
    page = client.get("/login")
    assert page.status_code == 200
    assert re.findall(r'<input[^>]*name="(\w+)"', page.text) == ["token"]
    assert '<label for="token"' in page.text
    tab = TestClient(client.app, follow_redirects=False)
    response = tab.post("/login", data={"token": "mtme_nonsense"})
    assert response.status_code == 303 and response.headers["location"] == "/login?err=token"
    assert "unknown or revoked" in tab.get(response.headers["location"]).text


def test_signed_in_team_uploads_through_the_form_and_sees_it_scored(
        client: Any, make_team: Any, make_predictions: Any) -> None:
    _, token = make_team("alpha")
    tab = sign_in(client, token)
    assert tab.get("/login").headers["location"] == "/me"  # already signed in
    accepted = upload(tab, make_predictions(seed=1)[0], description="first try")
    assert accepted.status_code == 202, accepted.text
    sid = accepted.json()["id"]
    data = tab.get("/me/submissions.json").json()
    (sub,) = data["submissions"]
    assert (sub["id"], sub["state"], sub["method"], sub["description"]) == (
        sid, "scored", "form-model", "first try")
    assert set(sub["scores"]) == {"public"}  # before the reveal: the public split only
    assert data["quota"] == {"limit": 3, "used": 1, "left": 2,
                             "resets_at": data["quota"]["resets_at"]}
    assert data["methods"] == ["form-model"]
    assert f'id="sub-{sid}"' in data["rows"]
    page = tab.get("/me").text
    assert '<option value="form-model">' in page  # suggested next time
    assert "2 of 3" in page
    assert 'id="history"' in page and "history-point" in page


def test_scores_are_rounded_to_four_decimals_for_participants(
        client: Any, settings: Any, make_team: Any, make_predictions: Any) -> None:
    _, token = make_team("alpha")
    tab = sign_in(client, token)
    sid = upload(tab, make_predictions(seed=2)[0]).json()["id"]
    engine = make_engine(settings)
    try:
        with session_factory(engine)() as session:
            stored = session.execute(select(Score).where(
                Score.submission_id == sid, Score.split == "public",
                Score.task == "ctr")).scalar_one()
            assert stored.auc is not None and stored.ci_low is not None
            assert stored.ci_high is not None
            exact = (stored.auc, stored.ci_low, stored.ci_high)
    finally:
        engine.dispose()
    shown = tab.get("/me/submissions.json").json()["submissions"][0]["scores"]["public"]["ctr"]
    assert (shown["auc"], shown["ci_low"], shown["ci_high"]) == tuple(
        round(v, 4) for v in exact)
    page = tab.get("/me").text
    assert f"{exact[0]:.4f}" in page and repr(exact[0]) not in page


def test_a_refused_file_answers_with_every_problem_and_its_line_and_column(
        client: Any, make_team: Any) -> None:
    _, token = make_team("alpha")
    tab = sign_in(client, token)
    response = upload(tab, b"row_id,ctr,cvr\n0,2,0.5\n1,x,0.5\n")
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "invalid_file"
    problems = body["detail"]["problems"]
    assert any(p["row"] == 2 and p["column"] == "ctr" for p in problems), problems
    assert any(p["row"] == 3 and p["column"] == "ctr" for p in problems), problems
    assert tab.get("/me/submissions.json").json()["submissions"] == []


def test_the_page_shows_the_failure_reason_as_a_list_and_the_output_warning(
        client: Any, settings: Any, make_team: Any) -> None:
    team, token = make_team("alpha")
    engine = make_engine(settings)
    try:
        with session_factory(engine)() as session:
            session.add(Submission(team_id=team.id, country="NL", method="m", state="failed",
                                   reason="checkpoint refused:\n- output has shape [B, 1]\n"
                                          "- <b>second</b> problem", attempts=2))
            session.add(Submission(team_id=team.id, country="NL", method="m2",
                                   state="scored", checkpoint_sha256="0" * 64,
                                   outputs="ctr,cvr", output_warning="looks like pCTCVR"))
            session.commit()
    finally:
        engine.dispose()
    tab = sign_in(client, token)
    rows = tab.get("/me/submissions.json").json()["rows"]
    assert "<li>output has shape [B, 1]</li>" in rows
    assert "<li>&lt;b&gt;second&lt;/b&gt; problem</li>" in rows  # escaped, never markup
    assert "2 attempts" in rows
    assert "looks like pCTCVR" in rows


def test_logout_ends_the_session(client: Any, make_team: Any) -> None:
    _, token = make_team("alpha")
    tab = sign_in(client, token)
    page = tab.get("/logout")
    csrf = re.search(r'name="csrf" value="([0-9a-f]{64})"', page.text)
    assert csrf is not None
    # Without the form's token the session stays.
    assert tab.post("/logout", data={"csrf": "0" * 64}).headers["location"] == "/me"
    assert tab.get("/me").status_code == 200
    response = tab.post("/logout", data={"csrf": csrf.group(1)})
    assert response.headers["location"] == "/login"
    assert tab.get("/me").headers["location"].startswith("/login")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_upload_form_names_its_fields_and_explains_checkpoints(client: Any,
                                                                   make_team: Any) -> None:
    _, token = make_team("alpha")
    page = sign_in(client, token).get("/me").text
    form = page[page.index('<form id="upload-form"'):page.index("</form>", page.index(
        '<form id="upload-form"'))]
    names = re.findall(r'<(?:input|select)[^>]*name="(\w+)"', form)
    assert sorted(names) == ["checkpoint", "country", "description", "file", "method",
                             "outputs"]
    for field in names:
        assert f'<label for="{field}"' in form, field
    assert "torch.jit.trace" in form and "(pCTR, pCTCVR)" in form
    assert '<script src="/static/me.js"' in page
    script = client.get("/static/me.js")
    assert script.status_code == 200 and "upload.addEventListener" in script.text
    # Streamed from the File object: never read into the page's memory.
    assert "FileReader" not in script.text and "arrayBuffer" not in script.text


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_api_docs_load_their_assets_from_the_app(client: Any) -> None:
    for path, assets in (("/docs", ("swagger-ui-bundle.js", "swagger-ui.css")),
                         ("/redoc", ("redoc.standalone.js",))):
        page = client.get(path)
        assert page.status_code == 200
        for name in assets:
            assert f"/static/docs/{name}" in page.text
            asset = client.get(f"/static/docs/{name}")
            assert asset.status_code == 200 and len(asset.content) > 100_000
        assert "cdn." not in page.text and "fonts.googleapis" not in page.text
    assert client.get("/static/docs/../../etc/passwd").status_code == 404
    assert client.get("/static/docs/nothing.js").status_code == 404


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_cookie_is_secure_behind_https(client: Any, make_team: Any) -> None:
    _, token = make_team("alpha")
    tab = TestClient(client.app, base_url="https://testserver", follow_redirects=False)
    cookie = tab.post("/login", data={"token": token}).headers["set-cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie
    plain = TestClient(client.app, follow_redirects=False)
    assert "Secure" not in plain.post("/login", data={"token": token}).headers["set-cookie"]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_form_upload_is_not_held_to_the_small_body_cap(client: Any, make_team: Any) -> None:
    from app.main import MAX_REQUEST_BODY

    _, token = make_team("alpha")
    tab = sign_in(client, token)
    big = b"row_id,ctr,cvr\n" + b"0,0.5,0.5\n" * (MAX_REQUEST_BODY // 10 + 1)
    response = upload(tab, big)
    # Streamed in full and judged on its content (too many rows), not refused by size.
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_file"
