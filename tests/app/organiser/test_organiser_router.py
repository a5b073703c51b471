"""Organiser API and page on the real application (app/organiser/router.py, web.py)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from app_factories import World, add_team, app_client, token_for
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.models import AuditLog, Score, Submission
from app.web.session import COOKIE_NAME

XSS = "<script>alert(1)</script>"


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    yield from app_client(world)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def organiser_token(world: World) -> str:
    return token_for(world, add_team(world.session, "org", organiser=True))


def test_participants_cannot_use_organiser_endpoints(world: World, client: TestClient) -> None:
    team = add_team(world.session, "a")
    submission = world.submit(team, world.predictions(2.0))
    token = token_for(world, team)
    for path in (f"/api/v1/organiser/submissions/{submission.id}/hide",
                 "/api/v1/organiser/reveal", "/api/v1/organiser/rescore"):
        assert client.post(path).status_code == 401
        response = client.post(path, headers=bearer(token))
        assert response.status_code == 403
        assert response.json()["error"]
    assert client.get("/api/v1/organiser/audit", headers=bearer(token)).status_code == 403


def test_hide_takes_the_entry_off_and_is_audited(world: World, client: TestClient,
                                                 organiser_token: str) -> None:
    submission = world.submit(add_team(world.session, "a"), world.predictions(2.0))
    assert len(client.get("/api/v1/leaderboard").json()["entries"]) == 1
    response = client.post(f"/api/v1/organiser/submissions/{submission.id}/hide",
                           headers=bearer(organiser_token), json={"reason": "duplicate"})
    assert response.status_code == 200
    assert response.json() == {"id": submission.id, "hidden": True, "disqualified": False}
    assert client.get("/api/v1/leaderboard").json()["entries"] == []
    (entry,) = client.get("/api/v1/organiser/audit", headers=bearer(organiser_token)).json()
    assert (entry["actor"], entry["action"], entry["target_id"]) == ("org", "hide",
                                                                     submission.id)
    assert entry["detail"]["reason"] == "duplicate"


def test_disqualify_without_reason_is_refused(world: World, client: TestClient,
                                             organiser_token: str) -> None:
    submission = world.submit(add_team(world.session, "a"), world.predictions(2.0))
    response = client.post(f"/api/v1/organiser/submissions/{submission.id}/disqualify",
                           headers=bearer(organiser_token))
    assert response.status_code == 422
    assert response.json()["error"] == "reason_required"


def test_unknown_submission_is_404(client: TestClient, organiser_token: str) -> None:
    response = client.post("/api/v1/organiser/submissions/999/hide",
                           headers=bearer(organiser_token))
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_reveal_switches_the_leaderboard_to_the_private_split(
    world: World, client: TestClient, organiser_token: str,
) -> None:
    world.submit(add_team(world.session, "a"), world.predictions(2.0))
    assert client.get("/api/v1/leaderboard").json()["split"] == "public"
    response = client.post("/api/v1/organiser/reveal", headers=bearer(organiser_token))
    assert response.status_code == 200
    assert response.json()["revealed"] is True
    assert client.get("/api/v1/leaderboard").json()["split"] == "private"
    client.post("/api/v1/organiser/unreveal", headers=bearer(organiser_token))
    assert client.get("/api/v1/leaderboard").json()["split"] == "public"


def test_rescore_queues_every_scored_submission_and_keeps_old_scores(
    world: World, client: TestClient, organiser_token: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    submission = world.submit(add_team(world.session, "a"), world.predictions(2.0))
    # A new scorer version is installed: the worker scores under it, the old rows stay.
    monkeypatch.setattr("evaluator.scoring.SCORER_VERSION", "2")
    response = client.post("/api/v1/organiser/rescore", headers=bearer(organiser_token))
    assert response.status_code == 200
    assert response.json() == {"scorer_version": "2", "enqueued": 1}
    world.session.expire_all()
    versions = set(world.session.execute(
        select(Score.scorer_version).where(Score.submission_id == submission.id)).scalars())
    assert versions == {"1", "2"}
    data = client.get("/api/v1/leaderboard").json()
    assert data["scorer_versions"] == ["2"]


# ------------------------------------------------------------------------------- the page


def login(client: TestClient, token: str) -> str:
    response = client.post("/organiser/login", data={"token": token}, follow_redirects=False)
    assert response.status_code == 303
    cookie: str = response.headers.get("set-cookie", "")
    return cookie


def csrf_of(client: TestClient) -> str:
    page = client.get("/organiser").text
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert found, page
    return found.group(1)


def test_login_page_is_shown_without_a_session(client: TestClient) -> None:
    page = client.get("/organiser").text
    assert 'type="password"' in page
    assert "org-submissions" not in page


def test_participant_token_does_not_log_in(world: World, client: TestClient) -> None:
    token = token_for(world, add_team(world.session, "a"))
    assert COOKIE_NAME not in login(client, token)
    assert "not an organiser token" in client.get("/organiser?err=token").text


def test_login_sets_a_strict_httponly_session_cookie(client: TestClient,
                                                     organiser_token: str) -> None:
    cookie = login(client, organiser_token)
    assert cookie.startswith(f"{COOKIE_NAME}=")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
    assert organiser_token not in cookie
    assert "org-submissions" in client.get("/organiser").text


def test_page_actions_need_the_csrf_token(world: World, client: TestClient,
                                          organiser_token: str) -> None:
    submission = world.submit(add_team(world.session, XSS), world.predictions(2.0))
    login(client, organiser_token)
    refused = client.post("/organiser/action", data={"action": "hide", "csrf": "0" * 64,
                                                     "submission_id": str(submission.id)},
                          follow_redirects=False)
    assert refused.headers["location"].endswith("err=csrf")
    world.session.expire_all()
    assert not world.session.get_one(Submission, submission.id).hidden

    done = client.post("/organiser/action", data={
        "action": "hide", "csrf": csrf_of(client), "submission_id": str(submission.id),
        "reason": "spam"}, follow_redirects=False)
    assert "msg=done" in done.headers["location"]
    world.session.expire_all()
    assert world.session.get_one(Submission, submission.id).hidden
    row = world.session.execute(select(AuditLog)).scalar_one()
    assert row.action == "hide"


def test_organiser_page_escapes_team_names(world: World, client: TestClient,
                                          organiser_token: str) -> None:
    world.submit(add_team(world.session, XSS), world.predictions(2.0))
    login(client, organiser_token)
    page = client.get("/organiser").text
    assert XSS not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_messages_come_from_codes_not_from_the_url(client: TestClient,
                                                   organiser_token: str) -> None:
    login(client, organiser_token)
    page = client.get("/organiser?msg=Send+your+token+to+evil%40example.com").text
    assert "evil@example.com" not in page


def test_forged_cookie_is_not_a_session(client: TestClient, organiser_token: str) -> None:
    client.cookies.set(COOKIE_NAME, "1.9999999999.deadbeef")
    assert 'type="password"' in client.get("/organiser").text


def test_oversized_or_odd_forms_are_refused_without_reading_them_whole(
    client: TestClient, organiser_token: str,
) -> None:
    big = client.post("/organiser/login", content=b"token=" + b"x" * 100_000,
                      headers={"Content-Type": "application/x-www-form-urlencoded"},
                      follow_redirects=False)
    assert big.headers["location"].endswith("err=form")
    many = client.post("/organiser/login", content="&".join(f"f{i}=1" for i in range(50)),
                       headers={"Content-Type": "application/x-www-form-urlencoded"},
                       follow_redirects=False)
    assert many.headers["location"].endswith("err=form")
    multipart = client.post("/organiser/login", files={"token": ("t", b"x")},
                            follow_redirects=False)
    assert multipart.headers["location"].endswith("err=form")
    assert COOKIE_NAME in login(client, organiser_token)  # an honest form still works


def test_logged_in_organiser_still_sees_a_hidden_submission(
    world: World, client: TestClient, organiser_token: str,
) -> None:
    submission = world.submit(add_team(world.session, "a"), world.predictions(2.0))
    client.post(f"/api/v1/organiser/submissions/{submission.id}/hide",
                headers=bearer(organiser_token))
    assert client.get(f"/submissions/{submission.id}").status_code == 404
    login(client, organiser_token)
    page = client.get(f"/submissions/{submission.id}")
    assert page.status_code == 200
    assert ">hidden<" in page.text
