"""The CLI's one session helper (app/cli/session.py): who acts, and how much SQL a listing costs."""

from __future__ import annotations

from typing import Any

import pytest
from app_factories import World, add_submission, add_team
from app_factories import admin as run
from sqlalchemy import Engine, event, select

from app.models import AuditLog, Verification


def test_a_change_without_its_actor_is_refused_once_an_organiser_exists(world: World) -> None:
    add_team(world.session, "org", organiser=True)
    submission = add_submission(world.session, add_team(world.session, "a"))
    world.session.commit()
    code, output = run(world, "hide", str(submission.id))
    assert code == 2
    assert "--as" in output
    assert world.session.execute(select(AuditLog)).scalars().all() == []


def test_the_named_organiser_is_the_actor_of_every_change(world: World) -> None:
    organiser = add_team(world.session, "org", organiser=True)
    submission = add_submission(world.session, add_team(world.session, "a"))
    world.session.commit()
    for args in (("hide", str(submission.id)), ("reveal",), ("create-team", "b"),
                 ("create-token", "b")):
        code, output = run(world, *args, "--as", "org")
        assert code == 0, output
    world.session.expire_all()
    actors = {row.action: row.actor_team_id
              for row in world.session.execute(select(AuditLog)).scalars()}
    assert actors == {"hide": organiser.id, "reveal": organiser.id,
                      "create_team": organiser.id, "create_token": organiser.id}


def test_verify_records_the_named_organiser_not_the_first_one(world: World) -> None:
    add_team(world.session, "first-org", organiser=True)
    second = add_team(world.session, "second-org", organiser=True)
    submission = add_submission(world.session, add_team(world.session, "a"))
    submission.checkpoint_sha256 = submission.file_sha256 = "0" * 64
    world.session.commit()
    code, output = run(world, "verify", str(submission.id), "--enqueue", "--as", "second-org")
    assert code == 0, output
    world.session.expire_all()
    ver = world.session.execute(select(Verification)).scalar_one()
    assert ver.requested_by == second.id
    row = world.session.execute(select(AuditLog).where(AuditLog.action == "verify")).scalar_one()
    assert row.actor_team_id == second.id


def statements_of_list_teams(world: World, monkeypatch: pytest.MonkeyPatch) -> int:
    from app.db import make_engine as real

    count = 0

    def counting(settings: Any) -> Engine:
        engine = real(settings)

        def before(*_args: Any) -> None:
            nonlocal count
            count += 1

        event.listen(engine, "before_cursor_execute", before)
        return engine

    monkeypatch.setattr("app.cli.session.make_engine", counting)
    code, output = run(world, "list-teams")
    assert code == 0, output
    monkeypatch.setattr("app.cli.session.make_engine", real)
    return count


def test_listing_teams_costs_the_same_queries_for_two_teams_or_six(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from app.auth import issue_token

    for name in ("a", "b"):
        issue_token(world.session, add_team(world.session, name))
    world.session.commit()
    few = statements_of_list_teams(world, monkeypatch)
    for name in ("c", "d", "e", "f"):
        issue_token(world.session, add_team(world.session, name))
    world.session.commit()
    assert statements_of_list_teams(world, monkeypatch) == few
