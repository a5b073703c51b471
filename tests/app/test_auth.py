"""Tokens: stored as digests, found by prefix, revocable."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from app.auth import digest, team_for_token
from app.db import make_engine, session_factory
from app.models import ApiToken


def test_only_the_digest_of_a_token_is_stored(settings: Any, make_team: Any) -> None:
    _, token = make_team("alpha")
    engine = make_engine(settings)
    with session_factory(engine)() as session:
        row = session.execute(select(ApiToken)).scalar_one()
        assert row.digest == digest(token)
        assert token not in (row.digest, row.prefix)
    engine.dispose()


def test_token_finds_its_team_and_records_its_use(settings: Any, make_team: Any) -> None:
    team, token = make_team("alpha")
    engine = make_engine(settings)
    with session_factory(engine)() as session:
        found = team_for_token(session, token)
        assert found is not None and found.id == team.id
        assert session.execute(select(ApiToken)).scalar_one().last_used_at is not None
    engine.dispose()


def test_near_miss_and_revoked_tokens_find_nothing(settings: Any, make_team: Any) -> None:
    _, token = make_team("alpha")
    engine = make_engine(settings)
    with session_factory(engine)() as session:
        assert team_for_token(session, token[:-1] + ("A" if token[-1] != "A" else "B")) is None
        assert team_for_token(session, "") is None
        assert team_for_token(session, "mtme_" + "x" * 10_000) is None
        session.execute(select(ApiToken)).scalar_one().revoked_at = datetime.now(UTC)
        session.commit()
        assert team_for_token(session, token) is None
    engine.dispose()
