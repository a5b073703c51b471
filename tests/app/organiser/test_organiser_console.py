"""The organiser console (app/organiser/web.py): teams and tokens, every submission with its
reason, scores on every split and verification, the queue and the workers."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from app_factories import World, add_team, app_client, token_for
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from app.models import ApiToken, ProcessHeartbeat, Submission, Team, Verification


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    yield from app_client(world)


@pytest.fixture
def console(world: World, client: TestClient) -> TestClient:
    token = token_for(world, add_team(world.session, "org", organiser=True))
    response = client.post("/organiser/login", data={"token": token}, follow_redirects=False)
    assert response.status_code == 303
    return client


def csrf_of(client: TestClient) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', client.get("/organiser").text)
    assert found
    return found.group(1)


def act(client: TestClient, **fields: str) -> Any:
    return client.post("/organiser/action", data={"csrf": csrf_of(client)} | fields,
                       follow_redirects=False)


def test_a_new_team_and_its_token_are_shown_once(world: World, console: TestClient) -> None:
    page = act(console, action="create_team", name="new-team")
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    token = re.search(r'id="new-token">(mtme_[A-Za-z0-9_\-]+)<', page.text)
    assert token, page.text
    me = console.get("/api/v1/me", headers={"Authorization": f"Bearer {token.group(1)}"})
    assert me.status_code == 200 and me.json()["name"] == "new-team"
    # Once: the console shows only its prefix afterwards.
    assert token.group(1) not in console.get("/organiser").text
    again = act(console, action="create_team", name="new-team")
    assert "exists already" in again.text


def test_another_token_is_issued_and_a_revoked_one_stops_working(
        world: World, console: TestClient) -> None:
    team = add_team(world.session, "team-a")
    old = token_for(world, team)
    page = act(console, action="create_token", team_id=str(team.id))
    fresh = re.search(r'id="new-token">(mtme_[A-Za-z0-9_\-]+)<', page.text)
    assert fresh
    token_id = world.session.execute(select(ApiToken.id).where(
        ApiToken.team_id == team.id).order_by(ApiToken.id)).scalars().first()
    revoked = act(console, action="revoke_token", token_id=str(token_id))
    assert "msg=revoked" in revoked.headers["location"]
    auth = {"Authorization": f"Bearer {old}"}
    assert console.get("/api/v1/me", headers=auth).status_code == 401
    auth = {"Authorization": f"Bearer {fresh.group(1)}"}
    assert console.get("/api/v1/me", headers=auth).status_code == 200
    assert "revoked" in console.get("/organiser").text


def test_a_participants_session_cannot_use_the_console(world: World, client: TestClient) -> None:
    token = token_for(world, add_team(world.session, "team-a"))
    assert client.post("/login", data={"token": token},
                       follow_redirects=False).status_code == 303
    page = client.get("/organiser").text
    assert 'action="/organiser/login"' in page
    response = client.post("/organiser/action", data={"action": "create_team", "name": "x",
                                                      "csrf": "x"}, follow_redirects=False)
    assert "err=login" in response.headers["location"]
    assert world.session.execute(select(Team).where(Team.name == "x")).first() is None


def test_every_submission_shows_its_reason_private_scores_and_verification(
        world: World, console: TestClient) -> None:
    team = add_team(world.session, "team-a")
    scored = world.submit(team, world.predictions(2.0))
    failed = Submission(team_id=team.id, country="NL", method="broken", state="failed",
                        reason="prediction file refused:\n- line 7: not a number", attempts=3)
    world.session.add(failed)
    world.session.add(Verification(submission_id=scored.id, state="done", tolerance=1e-4,
                                   verified=True))
    world.session.commit()
    private = world.session.execute(text(
        "SELECT auc FROM score WHERE submission_id = :s AND split = 'private' AND task = 'ctr'"),
        {"s": scored.id}).scalar_one()
    page = console.get("/organiser").text
    assert "<li>line 7: not a number</li>" in page
    assert f"{private:.4f}" in page  # the private split, before any reveal
    assert "done: verified" in page


def test_queue_depth_and_the_workers_last_heartbeats_are_shown(
        world: World, console: TestClient) -> None:
    team = add_team(world.session, "team-a")
    expires = datetime(2026, 12, 2, 12, 5, tzinfo=UTC)
    world.session.add(Submission(team_id=team.id, country="NL", method="m", state="running",
                                 lease_owner="worker-7:1234", lease_expires_at=expires,
                                 attempts=1))
    world.session.commit()
    page = console.get("/organiser").text
    assert 'id="queue-depth">0<' in page
    assert "worker-7:1234" in page
    heartbeat = expires - timedelta(seconds=world.settings.lease_seconds)
    assert heartbeat.strftime("%Y-%m-%d %H:%M:%S UTC") in page


def test_each_consumers_heartbeat_is_shown_alive_or_not(
        world: World, console: TestClient) -> None:
    page = console.get("/organiser").text
    assert "nothing is taking jobs" in page
    now = datetime.now(UTC)
    stale = timedelta(seconds=world.settings.process_stale_seconds + 30)
    world.session.add_all([
        ProcessHeartbeat(name="host-a:101:x", role="consumer", started_at=now, beat_at=now),
        ProcessHeartbeat(name="host-b:202:y", role="worker", started_at=now - stale,
                         beat_at=now - stale)])
    world.session.commit()
    page = console.get("/organiser").text
    rows = {name: row for name, row in re.findall(
        r"<tr><td><code>([^<]+)</code></td>(.*?)</tr>", page.split('id="org-consumers"')[1]
        .split("</table>")[0], flags=re.S)}
    assert "alive" in rows["host-a:101:x"] and "no heartbeat" not in rows["host-a:101:x"]
    assert "no heartbeat" in rows["host-b:202:y"]
    assert "nothing is taking jobs" not in page
