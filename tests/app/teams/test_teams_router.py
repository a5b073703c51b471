"""Teams API: one's own team, organisers managing teams and tokens."""

from __future__ import annotations

from typing import Any


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_me_shows_the_team_and_its_quota(client: Any, make_team: Any, settings: Any) -> None:
    _, token = make_team("alpha")
    me = client.get("/api/v1/me", headers=bearer(token)).json()
    assert me["name"] == "alpha" and not me["is_organiser"]
    assert me["quota"]["limit"] == settings.daily_quota and me["quota"]["used"] == 0


def test_organiser_creates_a_team_whose_token_works(client: Any, make_team: Any) -> None:
    _, organiser = make_team("org", organiser=True)
    created = client.post("/api/v1/teams", headers=bearer(organiser),
                          json={"name": "beta"})
    assert created.status_code == 201
    token = created.json()["token"]
    assert client.get("/api/v1/me", headers=bearer(token)).json()["name"] == "beta"


def test_participant_cannot_create_teams(client: Any, make_team: Any) -> None:
    _, token = make_team("alpha")
    response = client.post("/api/v1/teams", headers=bearer(token), json={"name": "x"})
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"


def test_duplicate_team_name_is_409(client: Any, make_team: Any) -> None:
    _, organiser = make_team("org", organiser=True)
    make_team("alpha")
    response = client.post("/api/v1/teams", headers=bearer(organiser), json={"name": "alpha"})
    assert response.status_code == 409


def test_revoked_token_is_refused_at_once(client: Any, make_team: Any) -> None:
    team, token = make_team("alpha")
    _, organiser = make_team("org", organiser=True)
    tokens = client.get(f"/api/v1/teams/{team.id}/tokens", headers=bearer(organiser)).json()
    assert len(tokens) == 1 and tokens[0]["revoked_at"] is None
    revoked = client.post(f"/api/v1/tokens/{tokens[0]['id']}/revoke", headers=bearer(organiser))
    assert revoked.status_code == 200
    assert client.get("/api/v1/me", headers=bearer(token)).status_code == 401


def test_another_token_for_a_team_works_beside_the_first(client: Any, make_team: Any) -> None:
    team, first = make_team("alpha")
    _, organiser = make_team("org", organiser=True)
    issued = client.post(f"/api/v1/teams/{team.id}/tokens", headers=bearer(organiser))
    assert issued.status_code == 201
    second = issued.json()["token"]
    assert second != first
    for token in (first, second):
        assert client.get("/api/v1/me", headers=bearer(token)).status_code == 200


def test_token_listing_shows_prefixes_never_secrets(client: Any, make_team: Any) -> None:
    team, token = make_team("alpha")
    _, organiser = make_team("org", organiser=True)
    listing = client.get(f"/api/v1/teams/{team.id}/tokens", headers=bearer(organiser)).text
    assert token not in listing
    assert token[5:13] in listing
