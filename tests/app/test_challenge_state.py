"""The one owner of the challenge state (app/challenge.py)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app import challenge
from app.models import ChallengeState


def rows(session: Session) -> int:
    return int(session.execute(select(func.count()).select_from(ChallengeState)).scalar_one())


def test_the_migration_seeds_exactly_one_state_row(lb_session: Session) -> None:
    assert rows(lb_session) == 1
    assert challenge.is_revealed(lb_session) is False


def test_reading_the_board_inserts_nothing(client: Any, settings: Any) -> None:
    from app.db import make_engine, session_factory

    for path in ("/api/v1/leaderboard", "/", "/api/v1/leaderboard/NL"):
        assert client.get(path).status_code == 200
    engine = make_engine(settings)
    try:
        with session_factory(engine)() as session:
            assert rows(session) == 1
    finally:
        engine.dispose()


def test_a_missing_state_row_is_an_error_not_a_silent_insert(lb_session: Session) -> None:
    lb_session.execute(delete(ChallengeState))
    with pytest.raises(challenge.ChallengeStateMissing, match="leaderboard db upgrade"):
        challenge.is_revealed(lb_session)
    assert rows(lb_session) == 0


def test_the_installed_scorer_version_is_shown_else_the_newest(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import evaluator.scoring as scoring

    monkeypatch.setattr(scoring, "SCORER_VERSION", "2")
    assert challenge.shown_version(["1", "2", "10"]) == "2"
    assert challenge.shown_version(["1", "9", "10"]) == "10"
    assert challenge.shown_version([]) is None


def test_callers_see_the_public_split_until_the_reveal_and_organisers_all(
        lb_session: Session) -> None:
    assert challenge.splits_for(False) == ("public",)
    assert challenge.splits_for(False, organiser=True) == ("public", "private", "full")
    challenge.set_revealed(lb_session, None, True)
    assert challenge.visible_splits(lb_session) == ("public", "private", "full")
    assert challenge.board_split(challenge.is_revealed(lb_session)) == "private"
    assert rows(lb_session) == 1


def test_a_submission_and_its_result_show_the_same_scorer_version_after_a_rescore(
        client: Any, make_team: Any, make_predictions: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    import evaluator.scoring as scoring

    _, token = make_team("alpha")
    _, organiser_token = make_team("organisers", organiser=True)
    auth = {"Authorization": f"Bearer {token}"}
    body, _ = make_predictions(seed=2)
    sid = client.post("/api/v1/submissions", headers=auth, data={"country": "NL", "method": "m"},
                      files={"file": ("p.csv", body)}).json()["id"]
    monkeypatch.setattr(scoring, "SCORER_VERSION", "2")
    rescored = client.post("/api/v1/organiser/rescore",
                           headers={"Authorization": f"Bearer {organiser_token}"})
    assert rescored.json() == {"scorer_version": "2", "enqueued": 1}
    own = client.get(f"/api/v1/submissions/{sid}", headers=auth).json()
    public = client.get(f"/api/v1/results/{sid}").json()
    assert own["scorer_version"] == public["scorer_version"] == "2"
    monkeypatch.setattr(scoring, "SCORER_VERSION", "1")
    # The installed version wins over a newer one: both routes switch back together.
    own = client.get(f"/api/v1/submissions/{sid}", headers=auth).json()
    public = client.get(f"/api/v1/results/{sid}").json()
    assert own["scorer_version"] == public["scorer_version"] == "1"
