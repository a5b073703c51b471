"""Team use cases (app/teams/service.py) against the database's own constraints."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.orm import Session

from app.db import make_engine, session_factory
from app.errors import Conflict
from app.teams import service


def test_a_concurrent_duplicate_team_name_is_a_conflict_not_a_crash(
        db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = make_engine(db_url)
    factory = session_factory(engine)
    try:
        with factory() as first:
            # The twin's check ran before this commit: the race window, held open.
            monkeypatch.setattr("app.teams.repository.by_name", lambda _s, _n: None)
            service.create_team(first, None, "twins")
            first.commit()
        with factory() as second:
            with pytest.raises(Conflict) as refused:
                service.create_team(second, None, "twins")
            assert (refused.value.status, refused.value.code) == (409, "team_exists")
            # The savepoint kept the rest of the transaction usable.
            team, _ = service.create_team(second, None, "other")
            second.commit()
            assert team.id is not None
    finally:
        engine.dispose()


def test_the_api_answers_a_concurrent_duplicate_with_409(
        client: Any, make_team: Any, monkeypatch: pytest.MonkeyPatch, lb_session: Session) -> None:
    _, token = make_team("organisers", organiser=True)
    make_team("twins")
    monkeypatch.setattr("app.teams.repository.by_name", lambda _s, _n: None)
    response = client.post("/api/v1/teams", json={"name": "twins"},
                           headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 409, response.text
    assert response.json()["error"] == "team_exists"
