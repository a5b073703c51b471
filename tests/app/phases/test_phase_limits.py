"""Uploads against the schedule, through the real app on one injectable clock, on SQLite and
PostgreSQL: closed (403), a kind the phase does not take (422), limits per phase (429, saying
what resets when); refused and failed files cost nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from app_factories import START, SetClock, challenge_toml
from phases_factories import bearer, set_challenge, upload
from sqlalchemy import update

from app.db import make_engine, session_factory
from app.models import Submission


def setup(client: Any, settings: Any, at: Any, **toml: Any) -> SetClock:
    set_challenge(settings, challenge_toml(**toml))
    clock = SetClock(at)
    client.app.state.clock = clock
    return clock


def test_upload_between_phases_is_403_naming_the_next_opening(
        client: Any, settings: Any, make_team: Any, make_predictions: Any) -> None:
    setup(client, settings, START + timedelta(days=10, hours=3))
    _, token = make_team("alpha")
    response = upload(client, token, make_predictions(seed=1)[0])
    assert response.status_code == 403, response.text
    body = response.json()
    assert body["error"] == "challenge_closed"
    assert body["detail"]["next_phase"] == "final"
    assert body["detail"]["opens"] == "2026-11-12T00:00:00Z"


def test_upload_after_every_phase_is_403_naming_the_end(
        client: Any, settings: Any, make_team: Any, make_predictions: Any) -> None:
    setup(client, settings, START + timedelta(days=500))
    _, token = make_team("alpha")
    response = upload(client, token, make_predictions(seed=1)[0])
    assert response.status_code == 403 and response.json()["error"] == "challenge_closed"
    assert "ended at 2026-11-21T00:00:00Z" in response.json()["detail"]["message"]


def test_before_the_first_phase_is_closed_and_no_file_is_open(
        client: Any, settings: Any, make_team: Any, make_predictions: Any) -> None:
    clock = setup(client, settings, START - timedelta(days=1))
    _, token = make_team("alpha")
    assert upload(client, token, make_predictions(seed=1)[0]).status_code == 403
    set_challenge(settings, None)
    clock.at = START + timedelta(days=500)
    assert upload(client, token, make_predictions(seed=1)[0]).status_code == 202


def test_a_kind_the_phase_does_not_take_is_422(client: Any, settings: Any, make_team: Any,
                                               make_predictions: Any) -> None:
    setup(client, settings, START + timedelta(days=1), dev_kinds='["checkpoint"]')
    _, token = make_team("alpha")
    response = upload(client, token, make_predictions(seed=1)[0])
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "kind_not_accepted"
    assert response.json()["detail"]["refused"] == ["file"]


def test_daily_limit_of_each_phase_and_what_resets_when(
        client: Any, settings: Any, make_team: Any, make_predictions: Any) -> None:
    clock = setup(client, settings, START + timedelta(days=1, hours=5), daily=2)
    _, token = make_team("alpha")
    body = make_predictions(seed=1)[0]
    assert [upload(client, token, body).status_code for _ in range(2)] == [202, 202]
    refused = upload(client, token, body)
    assert refused.status_code == 429, refused.text
    detail = refused.json()["detail"]
    assert (detail["which"], detail["limit"], detail["phase"]) == ("daily", 2, "development")
    assert detail["resets_at"] == "2026-11-03T00:00:00+00:00"
    assert int(refused.headers["Retry-After"]) == 19 * 3600 + 1
    me = client.get("/api/v1/me", headers=bearer(token)).json()["quota"]
    assert (me["phase"], me["limit"], me["used"]) == ("development", 2, 2)
    clock.at = START + timedelta(days=2, hours=1)  # the next UTC day
    assert upload(client, token, body).status_code == 202
    clock.at = START + timedelta(days=12)  # the final phase: its own limit of 1 a day
    assert upload(client, token, body).status_code == 202
    again = upload(client, token, body)
    assert again.status_code == 429 and again.json()["detail"]["phase"] == "final"


def test_total_limit_of_a_phase_says_it_resets_when_the_next_phase_opens(
        client: Any, settings: Any, make_team: Any, make_predictions: Any) -> None:
    clock = setup(client, settings, START + timedelta(days=1), daily=5, total=2)
    _, token = make_team("alpha")
    body = make_predictions(seed=1)[0]
    assert upload(client, token, body).status_code == 202
    clock.at = START + timedelta(days=2)
    assert upload(client, token, body).status_code == 202
    clock.at = START + timedelta(days=3)
    refused = upload(client, token, body)
    assert refused.status_code == 429
    detail = refused.json()["detail"]
    assert (detail["which"], detail["limit"], detail["used"]) == ("total", 2, 2)
    assert detail["resets_at"] == "2026-11-12T00:00:00Z"
    assert "next phase opens" in detail["message"]


def test_refused_and_failed_files_cost_nothing(client: Any, settings: Any, make_team: Any,
                                               make_predictions: Any) -> None:
    setup(client, settings, START + timedelta(days=1), daily=1)
    _team, token = make_team("alpha")
    bad = upload(client, token, b"row_id,ctr,cvr\n0,2,0.5\n")
    assert bad.status_code == 422
    first = upload(client, token, make_predictions(seed=1)[0])
    assert first.status_code == 202
    engine = make_engine(settings)
    try:
        with session_factory(engine)() as session:
            session.execute(update(Submission).where(Submission.id == first.json()["id"])
                            .values(state="failed"))
            session.commit()
    finally:
        engine.dispose()
    assert upload(client, token, make_predictions(seed=2)[0]).status_code == 202
    assert upload(client, token, make_predictions(seed=3)[0]).status_code == 429


def test_challenge_is_public_and_names_the_current_phase_and_end(client: Any,
                                                                  settings: Any) -> None:
    setup(client, settings, START + timedelta(days=1), feedback="ladder")
    body = client.get("/api/v1/challenge").json()
    assert body["current_phase"]["name"] == "development"
    assert body["end"] == "2026-11-21T00:00:00Z"
    assert body["rules"]["feedback"] == "ladder" and body["rules"]["selection_limit"] == 2
    assert [p["name"] for p in body["phases"]] == ["development", "final", "post"]
