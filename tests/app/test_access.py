"""Who may see and do what, through the real app (TestClient, queue in immediate mode) on SQLite
and PostgreSQL: another team's submissions are 'not found', organiser endpoints refuse
participants, private-split figures stay out of every response until the reveal, and tokens
are kept only as digests compared in constant time."""

from __future__ import annotations

import hmac
import json
import re
from typing import Any

import pytest
from app_factories import app_routes
from sqlalchemy import func, inspect, select, text

from app.auth import TOKEN_PREFIX, digest, team_for_token
from app.db import make_engine, session_factory
from app.models import ApiToken, AuditLog, ChallengeState, Score, Submission, Team, Verification

# Every route of the app and who may call it. A new route fails
# test_every_route_has_an_access_class until it is placed here (and so covered below).
PUBLIC, TEAM, ORGANISER, ORGANISER_PAGE = "public", "team", "organiser", "organiser page"
# Pages of a signed-in team (the session cookie of /login; a bearer token opens none of them).
TEAM_PAGE = "team page"
ACCESS: dict[tuple[str, str], str] = {
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/redoc"): PUBLIC,
    ("GET", "/health"): PUBLIC,
    ("GET", "/"): PUBLIC,
    ("GET", "/country/{country}"): PUBLIC,
    ("GET", "/submissions/{submission_id}"): PUBLIC,
    ("GET", "/static/{name}"): PUBLIC,
    ("GET", "/static/docs/{name}"): PUBLIC,
    ("GET", "/login"): PUBLIC,
    ("POST", "/login"): PUBLIC,
    ("GET", "/logout"): TEAM_PAGE,
    ("POST", "/logout"): TEAM_PAGE,
    ("GET", "/me"): TEAM_PAGE,
    ("GET", "/me/submissions.json"): TEAM_PAGE,
    ("POST", "/me/submissions"): TEAM_PAGE,
    ("POST", "/me/submissions/{submission_id}/select"): TEAM_PAGE,
    ("POST", "/me/submissions/{submission_id}/unselect"): TEAM_PAGE,
    ("POST", "/me/submissions/{submission_id}/withdraw"): TEAM_PAGE,
    ("GET", "/api/v1/leaderboard"): PUBLIC,
    ("GET", "/api/v1/leaderboard/{country}"): PUBLIC,
    ("GET", "/api/v1/results/{submission_id}"): PUBLIC,
    ("POST", "/api/v1/submissions"): TEAM,
    ("GET", "/api/v1/submissions"): TEAM,
    ("GET", "/api/v1/submissions/{submission_id}"): TEAM,
    ("GET", "/api/v1/me"): TEAM,
    ("POST", "/api/v1/submissions/{submission_id}/verify"): ORGANISER,
    ("GET", "/api/v1/submissions/{submission_id}/verifications"): ORGANISER,
    ("GET", "/api/v1/teams"): ORGANISER,
    ("POST", "/api/v1/teams"): ORGANISER,
    ("GET", "/api/v1/teams/{team_id}/tokens"): ORGANISER,
    ("POST", "/api/v1/teams/{team_id}/tokens"): ORGANISER,
    ("POST", "/api/v1/tokens/{token_id}/revoke"): ORGANISER,
    ("POST", "/api/v1/organiser/submissions/{submission_id}/hide"): ORGANISER,
    ("POST", "/api/v1/organiser/submissions/{submission_id}/unhide"): ORGANISER,
    ("POST", "/api/v1/organiser/submissions/{submission_id}/disqualify"): ORGANISER,
    ("POST", "/api/v1/organiser/submissions/{submission_id}/requalify"): ORGANISER,
    ("POST", "/api/v1/organiser/rescore"): ORGANISER,
    ("POST", "/api/v1/organiser/reveal"): ORGANISER,
    ("POST", "/api/v1/organiser/unreveal"): ORGANISER,
    ("GET", "/api/v1/organiser/audit"): ORGANISER,
    ("GET", "/organiser"): ORGANISER_PAGE,
    ("POST", "/organiser/login"): ORGANISER_PAGE,
    ("POST", "/organiser/logout"): ORGANISER_PAGE,
    ("POST", "/organiser/action"): ORGANISER_PAGE,
    ("POST", "/organiser/challenge"): ORGANISER_PAGE,
    ("GET", "/api/v1/challenge"): PUBLIC,
    ("PUT", "/api/v1/submissions/{submission_id}/selection"): TEAM,
    ("DELETE", "/api/v1/submissions/{submission_id}/selection"): TEAM,
    ("POST", "/api/v1/submissions/{submission_id}/withdraw"): TEAM,
    # The submission page's withdraw form: the team's token travels in the form, so the route
    # itself is open and answers a missing or wrong token with a redirect saying so.
    ("POST", "/submissions/{submission_id}/withdraw"): PUBLIC,
    ("GET", "/api/v1/leaderboard/final"): PUBLIC,
    ("GET", "/final"): PUBLIC,
}
# Bodies that would succeed for an organiser, so a refusal is the auth check and not validation.
BODIES: dict[str, dict[str, Any]] = {
    "/api/v1/teams": {"name": "made-by-a-participant"},
    "/api/v1/submissions/{submission_id}/verify": {"tolerance": 0.5},
    "/api/v1/organiser/submissions/{submission_id}/hide": {"reason": "participant"},
    "/api/v1/organiser/submissions/{submission_id}/disqualify": {"reason": "participant"},
    "/api/v1/organiser/rescore": {},
}
NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def upload(client: Any, token: str, body: bytes, method: str = "mine",
           key: str | None = None) -> Any:
    headers = bearer(token) | ({"Idempotency-Key": key} if key else {})
    return client.post("/api/v1/submissions", headers=headers,
                       files={"file": ("predictions.csv", body, "text/csv")},
                       data={"country": "NL", "method": method})


class World:
    """Two competing teams and an organiser; team A has one scored submission."""

    def __init__(self, client: Any, make_team: Any, make_predictions: Any,
                 settings: Any) -> None:
        self.client = client
        self.settings = settings
        self.a, self.a_token = make_team("team-a")
        self.b, self.b_token = make_team("team-b")
        _, self.org_token = make_team("organisers", organiser=True)
        response = upload(client, self.a_token, make_predictions(seed=11)[0],
                          method="a-secret-method", key="a-key-1")
        assert response.status_code == 202, response.text
        self.a_sid: int = response.json()["id"]
        assert self.get(f"/api/v1/submissions/{self.a_sid}",
                        self.a_token).json()["state"] == "scored"
        with self.session() as session:
            self.a_token_id = session.execute(
                select(ApiToken.id).where(ApiToken.team_id == self.a.id)).scalar_one()

    def session(self) -> Any:
        engine = make_engine(self.settings)
        factory = session_factory(engine)

        class Closing:
            def __enter__(self) -> Any:
                self.session = factory()
                return self.session

            def __exit__(self, *_: object) -> None:
                self.session.close()
                engine.dispose()

        return Closing()

    def get(self, path: str, token: str | None = None) -> Any:
        return self.client.get(path, headers=bearer(token) if token else {})

    def fill(self, path: str) -> str:
        return (path.replace("{submission_id}", str(self.a_sid))
                .replace("{team_id}", str(self.a.id)).replace("{token_id}", str(self.a_token_id))
                .replace("{country}", "NL")
                .replace("/static/docs/{name}", "/static/docs/swagger-ui.css")
                .replace("{name}", "style.css"))

    def call(self, method: str, template: str, headers: dict[str, str]) -> Any:
        path = self.fill(template)
        if method == "GET":
            return self.client.get(path, headers=headers)
        if method in ("PUT", "DELETE"):
            return self.client.request(method, path, headers=headers)
        if template == "/api/v1/submissions":
            return self.client.post(path, headers=headers, data={"country": "NL", "method": "x"},
                                    files={"file": ("p.csv", b"row_id,ctr,cvr\n", "text/csv")})
        return self.client.post(path, headers=headers, json=BODIES.get(template))


@pytest.fixture
def world(client: Any, make_team: Any, make_predictions: Any, settings: Any) -> World:
    return World(client, make_team, make_predictions, settings)


# ------------------------------------------------------------------------------- the routes


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_every_route_has_an_access_class(client: Any) -> None:
    assert set(app_routes(client.app)) == set(ACCESS)


# ------------------------------------------------------------------- another team's submission


def test_other_teams_submission_is_not_found_on_every_route_taking_its_id(world: World) -> None:
    missing = 2**31 - 2
    for method, template in (k for k in ACCESS if "{submission_id}" in k[1]):
        kind = ACCESS[(method, template)]
        response = world.call(method, template, bearer(world.b_token))
        body = response.text
        assert "a-secret-method" not in body or kind == PUBLIC, (method, template)
        if kind == ORGANISER:
            assert response.status_code == 403, (method, template, body)
        elif kind == TEAM_PAGE:
            # A bearer token opens no team page: it is sent to sign in (the signed-in forms'
            # own tests are in tests/app/participants).
            assert response.url.path == "/login", (method, template, body)
        elif kind == TEAM:
            assert response.status_code == 404, (method, template, body)
            # Word for word the answer about an id that does not exist: ids reveal nothing.
            other = world.call(method, template.replace("{submission_id}", str(missing)),
                               bearer(world.b_token))
            assert (other.status_code, other.text.replace(str(missing), "ID")) == (
                404, body.replace(str(world.a_sid), "ID"))
        else:
            # The public board's view of a scored submission: public, and only the public split.
            assert kind == PUBLIC and response.status_code == 200, (method, template)
            assert "a-key-1" not in body
    listed = world.get("/api/v1/submissions", world.b_token)
    assert listed.status_code == 200 and listed.json() == []


def test_unscored_or_hidden_submission_is_not_found_on_public_routes(world: World) -> None:
    with world.session() as session:
        failed = Submission(team_id=world.a.id, country="NL", method="a-failed-method",
                            state="failed", reason="a-private-failure-reason", attempts=3)
        session.add(failed)
        session.commit()
        failed_id = failed.id
    hidden = world.client.post(f"/api/v1/organiser/submissions/{world.a_sid}/hide",
                               headers=bearer(world.org_token), json={"reason": "test"})
    assert hidden.status_code == 200, hidden.text
    for sid in (failed_id, world.a_sid):
        for path in (f"/api/v1/results/{sid}", f"/submissions/{sid}"):
            for token in (None, world.b_token):
                response = world.get(path, token)
                assert response.status_code == 404, (path, response.text)
                assert "a-private-failure-reason" not in response.text
                assert "a-failed-method" not in response.text
        response = world.get(f"/api/v1/submissions/{sid}", world.b_token)
        assert response.status_code == 404
    # The owner still sees both, with the reason.
    own = world.get(f"/api/v1/submissions/{failed_id}", world.a_token).json()
    assert own["reason"] == "a-private-failure-reason"


# ------------------------------------------------------------------------ organiser endpoints


def test_participant_is_refused_every_organiser_endpoint_and_changes_nothing(
        world: World) -> None:
    before = organiser_state(world)
    for method, template in (k for k, kind in ACCESS.items() if kind == ORGANISER):
        response = world.call(method, template, bearer(world.b_token))
        assert response.status_code == 403, (method, template, response.text)
        assert response.json()["error"] == "forbidden"
    assert organiser_state(world) == before
    # A's token was not revoked by B's attempt.
    assert world.get("/api/v1/me", world.a_token).status_code == 200


def test_participant_token_opens_no_organiser_page(world: World) -> None:
    login = world.client.post("/organiser/login", data={"token": world.b_token},
                              follow_redirects=False)
    assert login.status_code == 303 and "err=token" in login.headers["location"]
    assert "lb_session" not in login.headers.get("set-cookie", "")
    page = world.client.get("/organiser", headers=bearer(world.b_token))
    assert page.status_code == 200 and "a-secret-method" not in page.text
    before = organiser_state(world)
    fake = {"Cookie": f"lb_session={world.b.id}.1.9999999999.{'0' * 64}"}
    for headers in (bearer(world.b_token), fake):
        action = world.client.post("/organiser/action", headers=headers, follow_redirects=False,
                                   data={"action": "reveal", "csrf": "x"})
        assert action.status_code == 303 and "err=login" in action.headers["location"]
    assert organiser_state(world) == before


def test_no_or_bad_token_is_401_on_every_team_and_organiser_endpoint(world: World) -> None:
    with world.session() as session:
        revoked = session.get(ApiToken, world.a_token_id)
        assert revoked is not None
        revoked.revoked_at = revoked.created_at
        session.commit()
    near_miss = world.b_token[:-1] + ("A" if world.b_token[-1] != "A" else "B")
    attempts: list[dict[str, str]] = [
        {}, bearer(world.a_token), bearer(near_miss), bearer(TOKEN_PREFIX),
        {"Authorization": f"Basic {world.b_token}"}, {"Authorization": world.b_token},
    ]
    for method, template in (k for k, kind in ACCESS.items() if kind in (TEAM, ORGANISER)):
        for headers in attempts:
            response = world.call(method, template, headers)
            assert response.status_code == 401, (method, template, headers, response.text)
            assert response.headers["www-authenticate"] == "Bearer"


def organiser_state(world: World) -> dict[str, Any]:
    """Everything an organiser endpoint could change."""
    with world.session() as session:
        return {
            "teams": session.execute(select(Team.name).order_by(Team.id)).scalars().all(),
            "tokens": session.execute(select(ApiToken.id, ApiToken.revoked_at)
                                      .order_by(ApiToken.id)).all(),
            "submissions": session.execute(
                select(Submission.id, Submission.hidden, Submission.disqualified,
                       Submission.state).order_by(Submission.id)).all(),
            "scores": session.execute(select(Score.id).order_by(Score.id)).scalars().all(),
            "verifications": session.execute(select(Verification.id)).scalars().all(),
            "revealed": session.execute(select(ChallengeState.revealed)).scalars().all(),
            "audit": session.execute(select(AuditLog.id, AuditLog.actor_team_id)
                                     .order_by(AuditLog.id)).all(),
        }


# ------------------------------------------------------------------------ private-split scores


def renderings(value: float) -> set[str]:
    """The ways a figure is written in this service's responses and pages."""
    return {repr(value), repr(round(value, 6)), repr(round(value, 4)), f"{value:.6f}",
            f"{value:.5f}", f"{value:.4f}", f"{value:.3f}"}


def numeric_tokens(body: str) -> set[str]:
    return set(NUMBER.findall(body))


def numbers_under(data: Any, keys: set[str], inside: bool = False) -> list[float]:
    """Every number nested under a dict key in `keys`, anywhere in a JSON document."""
    if isinstance(data, dict):
        return [n for k, v in data.items() for n in numbers_under(v, keys, inside or k in keys)]
    if isinstance(data, list):
        return [n for v in data for n in numbers_under(v, keys, inside)]
    is_number = isinstance(data, int | float) and not isinstance(data, bool)
    return [data] if inside and is_number else []


def readable_pages(world: World) -> list[tuple[str, str | None]]:
    """Every GET a participant or a visitor can make, with the token it is made with."""
    paths = ["/", "/?rank=average_rank", "/health"]
    for country in ("NL", "ES", "FR", "US"):
        paths += [f"/country/{country}", f"/api/v1/leaderboard/{country}",
                  f"/api/v1/leaderboard/{country}?format=csv"]
    for rank in ("mean_auc", "average_rank"):
        paths += [f"/api/v1/leaderboard?rank={rank}",
                  f"/api/v1/leaderboard?rank={rank}&format=csv"]
    paths += [f"/api/v1/results/{world.a_sid}", f"/submissions/{world.a_sid}"]
    pages: list[tuple[str, str | None]] = [(p, None) for p in paths]
    pages += [(p, world.b_token) for p in paths]
    pages += [(p, world.a_token) for p in (
        "/api/v1/submissions", f"/api/v1/submissions/{world.a_sid}", "/api/v1/me")]
    return pages


def hidden_and_visible_values(world: World) -> tuple[list[float], list[float]]:
    """(private and full split figures, public split figures) as stored for A's submission."""
    hidden: list[float] = []
    visible: list[float] = []
    with world.session() as session:
        for score in session.execute(select(Score)).scalars():
            figures = [v for v in (score.auc, score.ci_low, score.ci_high, score.logloss)
                       if v is not None]
            (visible if score.split == "public" else hidden).extend(figures)
    return hidden, visible


def tokens_without_a(world: World) -> set[str]:
    """The numbers on every readable page while A's submission is off the board."""
    def flag(action: str) -> None:
        response = world.client.post(f"/api/v1/organiser/submissions/{world.a_sid}/{action}",
                                     headers=bearer(world.org_token), json={"reason": "test"})
        assert response.status_code == 200, response.text

    flag("hide")
    try:
        return {t for path, token in readable_pages(world)
                for t in numeric_tokens(world.get(path, token).text)}
    finally:
        flag("unhide")


def test_private_scores_appear_nowhere_before_the_reveal_and_everywhere_after(
        world: World) -> None:
    hidden, visible = hidden_and_visible_values(world)
    with world.session() as session:
        private_aucs = session.execute(select(Score.auc).where(
            Score.split == "private", Score.auc.is_not(None))).scalars().all()
    assert len(private_aucs) == 3
    hidden.append(sum(private_aucs) / len(private_aucs))  # the private mean AUC of a row
    with world.session() as session:
        public_aucs = session.execute(select(Score.auc).where(
            Score.split == "public", Score.auc.is_not(None))).scalars().all()
    visible.append(sum(public_aucs) / len(public_aucs))  # the public mean, shown on the board
    # Figures that show without A's submission (the published reference results) or are
    # A's public ones cannot tell a leak from a coincidence; every other form of each
    # private figure is looked for.
    allowed = {r for v in visible for r in renderings(v)} | tokens_without_a(world)
    forbidden = {r for v in hidden for r in renderings(v)} - allowed
    # The check is not empty: each private AUC keeps at least its 6-digit form.
    assert all(repr(round(v, 6)) in forbidden for v in private_aucs)

    for path, token in readable_pages(world):
        response = world.get(path, token)
        assert response.status_code == 200, (path, response.text)
        leaked = numeric_tokens(response.text) & forbidden
        assert not leaked, f"{path} shows private-split figures before the reveal: {leaked}"
        if response.headers["content-type"].startswith("application/json"):
            data = response.json()
            assert numbers_under(data, {"private", "full"}) == [], path

    # The signed-in team's own pages, too (the session cookie, not a bearer token).
    own = sign_in(world, world.a_token)
    for path in ("/me", "/me/submissions.json", f"/submissions/{world.a_sid}"):
        response = own.get(path)
        assert response.status_code == 200, (path, response.text)
        leaked = numeric_tokens(response.text) & forbidden
        assert not leaked, f"{path} shows private-split figures before the reveal: {leaked}"

    reveal = world.client.post("/api/v1/organiser/reveal", headers=bearer(world.org_token))
    assert reveal.status_code == 200 and reveal.json()["revealed"] is True
    # Now the same detector finds them: in the board (6 digits), the result (full
    # precision) and the country page (4 digits).
    board = numeric_tokens(world.get("/api/v1/leaderboard/NL").text)
    assert {repr(round(v, 6)) for v in private_aucs} <= board
    result = numeric_tokens(world.get(f"/api/v1/results/{world.a_sid}").text)
    assert {repr(v) for v in private_aucs} <= result
    assert {f"{v:.4f}" for v in private_aucs} <= numeric_tokens(world.get("/country/NL").text)
    own = world.get(f"/api/v1/submissions/{world.a_sid}", world.a_token).json()
    assert {round(own["scores"]["private"][t]["auc"], 6) for t in ("ctr", "cvr", "ctcvr")} == {
        round(v, 6) for v in private_aucs}


# ------------------------------------------------------------------------------------- tokens


def test_no_part_of_a_token_beyond_its_lookup_prefix_is_stored_anywhere(world: World) -> None:
    secrets = [world.a_token, world.b_token, world.org_token]
    created = world.client.post("/api/v1/teams", headers=bearer(world.org_token),
                                json={"name": "team-c"})
    assert created.status_code == 201
    secrets.append(created.json()["token"])
    issued = world.client.post(f"/api/v1/teams/{world.a.id}/tokens",
                               headers=bearer(world.org_token))
    assert issued.status_code == 201
    secrets.append(issued.json()["token"])
    # The lookup prefix (8 characters after `mtme_`) is stored on purpose; any 9 consecutive
    # characters of the random part would be more than that.
    pieces = {s[i:i + 9] for s in secrets for i in range(len(TOKEN_PREFIX), len(s) - 8)}
    engine = make_engine(world.settings)
    try:
        with engine.connect() as conn:
            for table in inspect(conn).get_table_names():
                for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                    for value in row:
                        stored = json.dumps(value) if isinstance(value, dict | list) else str(
                            value)
                        found = [p for p in pieces if p in stored]
                        assert not found, f"{table} stores part of a token: {stored!r}"
        with session_factory(engine)() as session:
            digests = set(session.execute(select(ApiToken.digest)).scalars())
    finally:
        engine.dispose()
    assert {digest(s) for s in secrets} <= digests


def test_token_is_checked_with_a_constant_time_digest_comparison(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, Any, bool]] = []
    real = hmac.compare_digest

    def recording(a: Any, b: Any) -> bool:
        result = real(a, b)
        calls.append((a, b, result))
        return result

    monkeypatch.setattr(hmac, "compare_digest", recording)
    near_miss = world.b_token[:-1] + ("A" if world.b_token[-1] != "A" else "B")
    with world.session() as session:
        assert team_for_token(session, near_miss) is None
        assert calls == [(digest(world.b_token), digest(near_miss), False)]
        calls.clear()
        found = team_for_token(session, world.b_token)
        assert found is not None and found.id == world.b.id
        assert calls == [(digest(world.b_token), digest(world.b_token), True)]
        calls.clear()
        # A token with an unknown prefix is refused by the indexed lookup: no comparison with
        # any stored digest, and no secret in the query (the prefix is not secret).
        assert team_for_token(session, TOKEN_PREFIX + "z" * 43) is None
        assert calls == []
    # The same path answers HTTP requests.
    assert world.get("/api/v1/me", near_miss).status_code == 401
    assert calls and calls[-1][2] is False


# ------------------------------------------------------------------------- bodies before auth


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_anonymous_oversized_body_is_refused_at_the_cap(client: Any, chunked: bool) -> None:
    # FastAPI reads a JSON body before the token is checked; the cap keeps that read bounded.
    from app.main import MAX_REQUEST_BODY

    body = b'{"submission_ids": [' + b"1," * MAX_REQUEST_BODY + b"1]}"
    content: Any = (body[i:i + 65536] for i in range(0, len(body), 65536)) if chunked else body
    for path in ("/api/v1/organiser/rescore", "/api/v1/teams",
                 "/api/v1/submissions/1/verify"):
        response = client.post(path, content=content, headers={
            "Content-Type": "application/json"})
        assert response.status_code == 413, (path, response.text)
        assert response.json()["error"] == "payload_too_large"
        if chunked:
            content = (body[i:i + 65536] for i in range(0, len(body), 65536))


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_upload_is_not_held_to_the_json_body_cap(client: Any, make_team: Any) -> None:
    from app.main import MAX_REQUEST_BODY

    _, token = make_team("uploader")
    big = b"row_id,ctr,cvr\n" + b"0,0.5,0.5\n" * (MAX_REQUEST_BODY // 10 + 1)
    response = upload(client, token, big)
    # Read in full and judged on its content (too many rows), not refused by size.
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_file"
    # The same behind a proxy that serves the app under a prefix.
    from fastapi.testclient import TestClient

    prefixed = TestClient(client.app, root_path="/lb")
    response = prefixed.post("/lb/api/v1/submissions", headers=bearer(token),
                             files={"file": ("p.csv", big, "text/csv")},
                             data={"country": "NL", "method": "m"})
    assert response.status_code == 422 and response.json()["error"] == "invalid_file"


def test_auth_write_is_committed_and_unlocked_before_the_endpoint_runs(
        settings: Any, make_team: Any) -> None:
    # A fresh token's first use writes last_used_at. That write must be committed by the auth
    # itself (the request may fail later) and its lock released at once: held while an upload
    # streams, SQLite's database-wide write lock made every other writer wait, then fail.
    from fastapi.security import HTTPAuthorizationCredentials

    from app.deps import current_team

    team, token = make_team("alpha")
    engine = make_engine(settings)
    other = make_engine(settings)
    try:
        session = session_factory(engine)()
        found = current_team(session, HTTPAuthorizationCredentials(scheme="Bearer",
                                                                   credentials=token))
        assert found.id == team.id
        with other.connect() as conn:
            # Refuse to wait: a lock still held is an error here, not a delay.
            if other.dialect.name == "sqlite":
                conn.exec_driver_sql("PRAGMA busy_timeout=0")
            else:
                conn.exec_driver_sql("SET lock_timeout = '200ms'")
            conn.execute(text("UPDATE api_token SET prefix = prefix WHERE team_id = :t"),
                         {"t": team.id})
            conn.commit()
        session.rollback()  # the request fails after auth
        session.close()
        with session_factory(engine)() as check:
            used = check.execute(select(ApiToken.last_used_at).where(
                ApiToken.team_id == team.id)).scalar_one()
        assert used is not None
    finally:
        engine.dispose()
        other.dispose()


# ------------------------------------------------------------------ the signed-in team's pages


def browser(world: World) -> Any:
    """A browser of its own (its own cookie jar) on the world's app."""
    from fastapi.testclient import TestClient

    return TestClient(world.client.app, follow_redirects=False)


def sign_in(world: World, token: str) -> Any:
    tab = browser(world)
    response = tab.post("/login", data={"token": token})
    assert response.status_code == 303 and response.headers["location"] == "/me", response.text
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert token not in cookie
    return tab


def csrf_of(tab: Any) -> str:
    page = tab.get("/me")
    assert page.status_code == 200, page.text
    found = re.search(r'data-csrf="([0-9a-f]{64})"', page.text)
    assert found, page.text
    return found.group(1)


def form_upload(tab: Any, csrf: str | None, body: bytes, **headers: str) -> Any:
    sent = {"X-CSRF-Token": csrf} if csrf is not None else {}
    return tab.post("/me/submissions", headers=sent | headers,
                    files={"file": ("p.csv", body, "text/csv")},
                    data={"country": "NL", "method": "from-the-form"})


def test_team_pages_need_a_session_and_a_bearer_token_opens_none(world: World) -> None:
    tab = browser(world)
    for method, template in (k for k, kind in ACCESS.items() if kind == TEAM_PAGE):
        for headers in ({}, bearer(world.a_token),
                        {"Cookie": f"lb_session={world.a.id}.{world.a_token_id}.9999999999."
                                   + "0" * 64}):
            path = world.fill(template)
            if method == "GET":
                response = tab.get(path, headers=headers)
            elif path == "/me/submissions":
                response = tab.post(path, headers=headers | {"X-CSRF-Token": "0" * 64},
                                    files={"file": ("p.csv", b"row_id,ctr,cvr\n", "text/csv")},
                                    data={"country": "NL", "method": "x"})
            else:
                response = tab.post(path, headers=headers, data={"csrf": "x"})
            assert response.status_code in (303, 401), (method, path, response.text)
            if response.status_code == 303:
                assert response.headers["location"].startswith("/login"), (method, path)
            assert "a-secret-method" not in response.text
    with world.session() as session:
        assert session.execute(select(Submission.method)).scalars().all() == ["a-secret-method"]


def test_me_shows_only_the_own_teams_submissions(world: World) -> None:
    a, b = sign_in(world, world.a_token), sign_in(world, world.b_token)
    assert "a-secret-method" in a.get("/me").text
    assert "a-secret-method" in a.get("/me/submissions.json").text
    for path in ("/me", "/me/submissions.json"):
        response = b.get(path)
        assert response.status_code == 200 and "a-secret-method" not in response.text
    assert b.get("/me/submissions.json").json()["submissions"] == []


def test_the_own_team_sees_its_failed_submission_page_and_no_one_else_does(
        world: World) -> None:
    with world.session() as session:
        failed = Submission(team_id=world.a.id, country="NL", method="a-failed-method",
                            state="failed", reason="line 3, column ctr: not a number",
                            attempts=1)
        session.add(failed)
        session.commit()
        failed_id = failed.id
    own = sign_in(world, world.a_token).get(f"/submissions/{failed_id}")
    assert own.status_code == 200 and "not a number" in own.text and "failed" in own.text
    for tab in (browser(world), sign_in(world, world.b_token)):
        other = tab.get(f"/submissions/{failed_id}")
        assert other.status_code == 404 and "a-failed-method" not in other.text


def test_form_upload_needs_the_csrf_header_and_the_same_site(world: World,
                                                          make_predictions: Any) -> None:
    tab = sign_in(world, world.b_token)
    csrf = csrf_of(tab)
    body = make_predictions(seed=5)[0]
    for token, headers in ((None, {}), ("0" * 64, {}),
                           (csrf, {"Origin": "http://evil.example"}),
                           (csrf, {"Sec-Fetch-Site": "cross-site"})):
        response = form_upload(tab, token, body, **headers)
        assert response.status_code == 403, (token, headers, response.text)
    with world.session() as session:
        assert session.execute(select(func.count()).select_from(Submission).where(
            Submission.team_id == world.b.id)).scalar_one() == 0
    accepted = form_upload(tab, csrf, body, Origin="http://testserver")
    assert accepted.status_code == 202, accepted.text


def test_cross_site_posts_to_the_sign_in_and_organiser_forms_are_refused(world: World) -> None:
    tab = browser(world)
    refused = tab.post("/login", data={"token": world.a_token},
                       headers={"Origin": "http://evil.example"})
    assert refused.status_code == 303 and "err=site" in refused.headers["location"]
    assert "lb_session" not in refused.headers.get("set-cookie", "")
    org = browser(world)
    assert org.post("/organiser/login", data={"token": world.org_token}).status_code == 303
    page = org.get("/organiser")
    csrf = re.search(r'name="csrf" value="([0-9a-f]{64})"', page.text)
    assert csrf is not None
    before = organiser_state(world)
    response = org.post("/organiser/action", data={"action": "reveal", "csrf": csrf.group(1)},
                        headers={"Sec-Fetch-Site": "cross-site", "Origin": "http://evil.example"})
    assert response.status_code == 303 and "err=site" in response.headers["location"]
    assert organiser_state(world) == before


# Issue 14, item 7: the cookie key used to be this public string whenever LB_ENV was not
# production; anyone could sign an organiser session with it.
OLD_FIXED_SECRET = "dev-insecure-secret-key-change-me"


def forged(secret: str, body: str) -> str:
    return body + "." + hmac.new(secret.encode(), ("session|" + body).encode(),
                                 "sha256").hexdigest()


def test_a_cookie_forged_with_the_old_fixed_secret_is_refused(world: World) -> None:
    import time

    with world.session() as session:
        org = session.execute(select(Team).where(Team.name == "organisers")).scalar_one()
        org_token_id = session.execute(select(ApiToken.id).where(
            ApiToken.team_id == org.id)).scalar_one()
    now = int(time.time())
    before = organiser_state(world)
    for value in (forged(OLD_FIXED_SECRET, f"{org.id}.{now}"),  # the old cookie's shape
                  forged(OLD_FIXED_SECRET, f"{org.id}.{org_token_id}.{now}")):
        tab = browser(world)
        for name in ("lb_org", "lb_session"):
            tab.cookies.set(name, value)
        page = tab.get("/organiser")
        assert page.status_code == 200 and 'action="/organiser/login"' in page.text
        assert "a-secret-method" not in page.text
        action = tab.post("/organiser/action", data={"action": "reveal", "csrf": "x"})
        assert action.status_code == 303 and "err=login" in action.headers["location"]
        assert tab.get("/me").status_code == 303
    assert organiser_state(world) == before


def test_revoking_a_token_ends_the_sessions_made_with_it(world: World) -> None:
    """Issue 14, item 8: for participants and organisers alike, at the next request."""
    participant = sign_in(world, world.a_token)
    organiser = browser(world)
    assert organiser.post("/organiser/login",
                          data={"token": world.org_token}).status_code == 303
    assert "a-secret-method" in organiser.get("/organiser").text
    assert participant.get("/me").status_code == 200
    with world.session() as session:
        org_token_id = session.execute(select(ApiToken.id).join(Team).where(
            Team.name == "organisers")).scalar_one()
    for token_id in (world.a_token_id, org_token_id):
        response = world.client.post(f"/api/v1/tokens/{token_id}/revoke",
                                     headers=bearer(world.org_token))
        assert response.status_code == 200, response.text
    assert participant.get("/me").headers["location"].startswith("/login")
    assert participant.get("/me/submissions.json").status_code == 401
    page = organiser.get("/organiser")
    assert 'action="/organiser/login"' in page.text and "a-secret-method" not in page.text
    before = organiser_state(world)
    response = organiser.post("/organiser/action", data={"action": "reveal", "csrf": "x"})
    assert response.status_code == 303 and "err=login" in response.headers["location"]
    assert organiser_state(world) == before
