"""Setting the challenge file: `leaderboard admin challenge set/show`, the organiser page's form,
and LB_CHALLENGE_FILE at start. Stored in the DB (every process agrees) and audit-logged; a bad
file is refused whole. SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from app_factories import World, admin, app_client, challenge_toml
from sqlalchemy import select

from app import challenge
from app.models import AuditLog
from app.teams.service import create_team


def test_admin_set_and_show_store_the_file_and_audit_it(world: World, tmp_path: Path) -> None:
    org, _ = create_team(world.session, None, "org", organiser=True)
    world.session.commit()
    good = tmp_path / "challenge.toml"
    good.write_text(challenge_toml(feedback="ladder"))
    code, out = admin(world, "challenge", "set", str(good), "--as", "org")
    assert code == 0, out
    code, out = admin(world, "challenge", "show")
    shown = json.loads(out)
    assert shown["rules"]["feedback"] == "ladder" and shown["end"] == "2026-11-21T00:00:00Z"
    world.session.expire_all()
    assert challenge.state(world.session).schedule_toml == good.read_text()
    actions = world.session.execute(select(AuditLog.action, AuditLog.actor_team_id)).all()
    assert ("challenge_set", org.id) in actions


def test_a_bad_file_is_refused_whole_with_field_and_problem(world: World,
                                                             tmp_path: Path) -> None:
    create_team(world.session, None, "org", organiser=True)
    world.session.commit()
    bad = tmp_path / "bad.toml"
    bad.write_text(challenge_toml(daily=-1).replace('"file", "checkpoint"', '"file", "cd"'))
    code, out = admin(world, "challenge", "set", str(bad), "--as", "org")
    assert code == 1
    assert "phase[0].daily_limit: a limit cannot be negative" in out
    assert "phase[0].kinds: unknown kind 'cd'" in out
    world.session.expire_all()
    assert challenge.state(world.session).schedule_toml is None


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert found is not None
    return found.group(1)


def test_organiser_page_form_stores_or_refuses_the_file(world: World) -> None:
    _, issued = create_team(world.session, None, "org", organiser=True)
    world.session.commit()
    gen = app_client(world)
    client: Any = next(gen)
    try:
        client.post("/organiser/login", data={"token": issued.secret})
        csrf = csrf_of(client.get("/organiser").text)
        refused = client.post("/organiser/challenge", data={
            "csrf": csrf, "toml": challenge_toml(daily=-3)}, follow_redirects=False)
        assert refused.status_code == 422
        assert "phase[0].daily_limit" in refused.text and "cannot be negative" in refused.text
        world.session.expire_all()
        assert challenge.state(world.session).schedule_toml is None
        stored = client.post("/organiser/challenge", data={
            "csrf": csrf, "toml": challenge_toml()}, follow_redirects=False)
        assert stored.status_code == 303
        world.session.expire_all()
        assert challenge.state(world.session).schedule_toml == challenge_toml()
        assert client.get("/api/v1/challenge").json()["end"] == "2026-11-21T00:00:00Z"
        forged = client.post("/organiser/challenge", data={"csrf": "0" * 64, "toml": ""},
                             follow_redirects=False)
        assert forged.headers["location"].endswith("err=csrf")
    finally:
        gen.close()


def test_the_file_setting_loads_the_file_when_the_app_starts(world: World,
                                                             tmp_path: Path) -> None:
    path = tmp_path / "challenge.toml"
    path.write_text(challenge_toml(selection_limit=3))
    world.settings = world.settings.model_copy(update={"challenge_file": path})
    gen = app_client(world)
    client: Any = next(gen)
    try:
        assert client.get("/api/v1/challenge").json()["rules"]["selection_limit"] == 3
    finally:
        gen.close()
