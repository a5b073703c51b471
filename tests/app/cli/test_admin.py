"""`leaderboard admin` organiser commands (app/organiser/cli.py) on a real database."""

from __future__ import annotations

import json

from app_factories import World, add_submission, add_team
from app_factories import admin as run
from sqlalchemy import select

from app.models import AuditLog, ChallengeState, Submission


def test_hide_from_the_command_line_is_audited_as_the_server_cli(world: World) -> None:
    submission = add_submission(world.session, add_team(world.session, "a"))
    world.session.commit()
    code, output = run(world, "hide", str(submission.id), "--reason", "duplicate")
    assert code == 0, output
    assert "hidden=True" in output
    world.session.expire_all()
    assert world.session.get_one(Submission, submission.id).hidden
    row = world.session.execute(select(AuditLog)).scalar_one()
    assert (row.action, row.actor_team_id) == ("hide", None)


def test_actor_must_be_an_organiser_team(world: World) -> None:
    organiser = add_team(world.session, "org", organiser=True)
    submission = add_submission(world.session, add_team(world.session, "a"))
    world.session.commit()
    code, output = run(world, "unhide", str(submission.id), "--as", "a")
    assert code == 1
    assert "not an organiser" in output
    code, _ = run(world, "unhide", str(submission.id), "--as", "org")
    assert code == 0
    world.session.expire_all()
    assert world.session.execute(select(AuditLog)).scalar_one().actor_team_id == organiser.id


def test_disqualify_without_reason_fails_with_the_reason(world: World) -> None:
    submission = add_submission(world.session, add_team(world.session, "a"))
    world.session.commit()
    code, output = run(world, "disqualify", str(submission.id))
    assert code == 1
    assert "say why" in output
    world.session.expire_all()
    assert world.session.execute(select(AuditLog)).first() is None


def test_reveal_and_audit_listing(world: World) -> None:
    code, output = run(world, "reveal")
    assert code == 0
    assert "revealed" in output
    world.session.expire_all()
    assert world.session.execute(select(ChallengeState)).scalar_one().revealed
    code, output = run(world, "audit")
    assert code == 0
    (line,) = output.strip().splitlines()
    assert json.loads(line)["action"] == "reveal"


def test_unknown_submission_fails_cleanly(world: World) -> None:
    code, output = run(world, "hide", "4242")
    assert code == 1
    assert "no submission 4242" in output


def test_out_of_range_id_is_a_usage_error(world: World) -> None:
    code, _ = run(world, "hide", "99999999999999999999")
    assert code == 2
