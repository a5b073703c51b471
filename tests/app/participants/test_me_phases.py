"""/me with a challenge file, on the app's injectable clock, on SQLite and PostgreSQL: the phase
box and its quotas, the final-selection and withdraw forms (the API's service calls and its 409
refusals, CSRF and same-site), ladder feedback and post-challenge marks."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from app_factories import START, SetClock, World, clocked_client, new_team
from app_factories import challenge_toml as phase_challenge
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.models import Selection, Submission
from app.phases import store

DURING = START + timedelta(days=2, hours=12)
GAP = START + timedelta(days=10, hours=12)
AFTER = START + timedelta(days=25)


def challenge_toml(*, selection_limit: int = 2, feedback: str = "exact") -> str:
    """The phase tests' challenge file with a total limit of 5 in development."""
    return phase_challenge(selection_limit=selection_limit, feedback=feedback, total=5)


@pytest.fixture
def phased(world: World) -> Iterator[tuple[Any, SetClock]]:
    yield from clocked_client(world, DURING)


def set_challenge(world: World, text: str | None) -> None:
    store.set_schedule(world.session, None, text, "test")
    world.session.commit()


def sign_in(client: Any, token: str) -> TestClient:
    tab = TestClient(client.app, follow_redirects=False)
    response = tab.post("/login", data={"token": token})
    assert response.status_code == 303 and response.headers["location"] == "/me"
    return tab


def entry(world: World, who: Any, when: datetime, skill: float = 1.0,
          method: str = "m") -> Submission:
    sub = world.submit(who, world.predictions(skill), method=method)
    sub.created_at = when
    world.session.commit()
    return sub


def text_of(page: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}"[^>]*>(.*?)</(?:dd|li|p|span)>', page, re.S)
    assert found, (element_id, page)
    return html.unescape(re.sub(r"<[^>]+>", "", found.group(1))).strip()


def form_csrf(page: str, action: str) -> str:
    found = re.search(rf'action="{re.escape(action)}"[^>]*>\s*<input type="hidden" '
                      r'name="csrf" value="([0-9a-f]{64})"', page)
    assert found, (action, page)
    return found.group(1)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def selections(world: World) -> list[int]:
    world.session.expire_all()
    return list(world.session.execute(select(Selection.submission_id)
                                      .order_by(Selection.submission_id)).scalars())


# ------------------------------------------------------------------------------ the phase box


def test_the_phase_box_shows_the_phase_what_is_left_and_the_time_to_the_end(
        world: World, phased: tuple[Any, SetClock]) -> None:
    client, clock = phased
    a, token = new_team(world, "alpha")
    tab = sign_in(client, token)
    # No challenge file: what the page showed before, one open phase and the daily quota.
    page = tab.get("/me").text
    assert text_of(page, "phase-name").startswith("No challenge schedule is set")
    assert text_of(page, "quota-left") == (
        f"{world.settings.daily_quota} of {world.settings.daily_quota}")
    assert text_of(page, "deadline") == "none set by the organisers"
    assert 'id="phase-closes"' not in page

    set_challenge(world, challenge_toml())
    entry(world, a, START + timedelta(days=1))  # yesterday: counts for the phase only
    entry(world, a, DURING - timedelta(hours=2))
    entry(world, a, DURING - timedelta(hours=1))
    failed = Submission(team_id=a.id, country="NL", method="m", state="failed",
                        created_at=DURING - timedelta(minutes=5))  # costs nothing
    world.session.add(failed)
    world.session.commit()
    page = tab.get("/me").text
    assert text_of(page, "phase-name") == "development"
    assert text_of(page, "phase-kinds") == "file and checkpoint submissions"
    assert text_of(page, "phase-closes") == "2026-11-11 00:00 UTC (in 7 d 12 h 00 min)"
    assert text_of(page, "quota-left") == "1 of 3"
    assert text_of(page, "quota-reset").startswith("12 h 00 min")
    assert text_of(page, "phase-left-total") == "2 of 5"
    assert text_of(page, "deadline") == "2026-11-21 00:00 UTC: in 17 d 12 h 00 min"
    box = tab.get("/me/submissions.json").json()["phase"]
    assert (box["phase"], box["left_today"], box["daily_limit"], box["left_in_phase"],
            box["total_limit"]) == ("development", 1, 3, 2, 5)
    # The API's own quota says the same.
    quota = client.get("/api/v1/me", headers=bearer(token)).json()["quota"]
    assert (quota["limit"] - quota["used"], quota["total_limit"] - quota["total_used"]) == (1, 2)

    clock.at = GAP
    page = tab.get("/me").text
    assert text_of(page, "phase-name").startswith("closed")
    assert text_of(page, "phase-next") == "final opens 2026-11-12 00:00 UTC (in 12 h 00 min)"
    assert text_of(page, "deadline") == "2026-11-21 00:00 UTC: in 9 d 12 h 00 min"
    assert text_of(page, "quota-left") == "none: no phase takes uploads now"

    clock.at = AFTER
    page = tab.get("/me").text
    assert text_of(page, "phase-name") == "post"
    assert text_of(page, "deadline").startswith("the challenge ended at 2026-11-21")


# ------------------------------------------------------------------ selection and withdraw


def test_select_unselect_and_withdraw_through_the_page_forms(
        world: World, phased: tuple[Any, SetClock]) -> None:
    client, _ = phased
    set_challenge(world, challenge_toml(selection_limit=1))
    a, token = new_team(world, "alpha")
    first = entry(world, a, DURING - timedelta(hours=3), method="one")
    second = entry(world, a, DURING - timedelta(hours=2), method="two")
    tab = sign_in(client, token)
    page = tab.get("/me").text
    assert text_of(page, "selected-NL") == "NL: 0 of 1 selected"
    csrf = form_csrf(page, f"/me/submissions/{first.id}/select")

    done = tab.post(f"/me/submissions/{first.id}/select", data={"csrf": csrf})
    assert done.status_code == 303, done.text
    assert done.headers["location"].startswith(f"/me?msg=selected&sid={first.id}")
    page = tab.get(done.headers["location"]).text
    assert text_of(page, "me-notice") == f"Submission {first.id} now counts for the final ranking."
    assert text_of(page, f"mark-{first.id}") == "selected (manual)"
    assert text_of(page, "selected-NL").startswith("NL: 1 of 1 selected")
    assert f'action="/me/submissions/{first.id}/unselect"' in page
    api = client.get(f"/api/v1/submissions/{first.id}", headers=bearer(token)).json()
    assert api["selection"] == "manual"
    rows = tab.get("/me/submissions.json").json()
    assert {s["id"]: s["selection"] for s in rows["submissions"]} == {
        first.id: "manual", second.id: None}
    assert rows["selection"]["countries"]["NL"]["selected"] == [first.id]
    assert "NL</strong>: 1 of 1 selected" in rows["phases_html"]  # the poll keeps it live

    # Past the limit: the API's 409, its own words on the page.
    refused = tab.post(f"/me/submissions/{second.id}/select", data={"csrf": csrf})
    assert refused.status_code == 409
    said = client.put(f"/api/v1/submissions/{second.id}/selection", headers=bearer(token))
    assert said.status_code == 409 and said.json()["error"] == "selection_limit"
    assert text_of(refused.text, "me-error") == said.json()["detail"]["message"]
    assert "unselect one of" in text_of(refused.text, "me-error")
    assert selections(world) == [first.id]

    undone = tab.post(f"/me/submissions/{first.id}/unselect", data={"csrf": csrf})
    assert undone.status_code == 303 and selections(world) == []
    assert client.get(f"/api/v1/submissions/{first.id}",
                      headers=bearer(token)).json()["selection"] is None

    gone = tab.post(f"/me/submissions/{second.id}/withdraw", data={"csrf": csrf})
    assert gone.status_code == 303
    world.session.expire_all()
    assert world.session.get(Submission, second.id).withdrawn  # type: ignore[union-attr]
    row = {s["id"]: s for s in tab.get("/me/submissions.json").json()["submissions"]}[second.id]
    assert row["withdrawn"] is True
    page = tab.get("/me").text
    assert f'action="/me/submissions/{second.id}/withdraw"' not in page
    assert f'action="/me/submissions/{second.id}/select"' not in page


def test_the_refusals_show_as_the_api_words_them(world: World,
                                                 phased: tuple[Any, SetClock]) -> None:
    client, clock = phased
    set_challenge(world, challenge_toml())
    a, token = new_team(world, "alpha")
    b, b_token = new_team(world, "beta")
    mine = entry(world, a, DURING - timedelta(hours=3))
    theirs = entry(world, b, DURING - timedelta(hours=2))
    failed = Submission(team_id=a.id, country="NL", method="m", state="failed",
                        created_at=DURING - timedelta(hours=1))
    world.session.add(failed)
    world.session.commit()
    tab = sign_in(client, token)
    csrf = form_csrf(tab.get("/me").text, f"/me/submissions/{mine.id}/select")

    refused = tab.post(f"/me/submissions/{failed.id}/select", data={"csrf": csrf})
    api = client.put(f"/api/v1/submissions/{failed.id}/selection", headers=bearer(token))
    assert (refused.status_code, api.json()["error"]) == (409, "submission_failed")
    assert text_of(refused.text, "me-error") == api.json()["detail"]["message"]

    # Another team's submission is not found, word for word as an id that does not exist.
    other = tab.post(f"/me/submissions/{theirs.id}/select", data={"csrf": csrf})
    missing = tab.post("/me/submissions/2147483000/select", data={"csrf": csrf})
    assert other.status_code == missing.status_code == 404
    assert text_of(other.text, "me-error").replace(str(theirs.id), "ID") == \
        text_of(missing.text, "me-error").replace("2147483000", "ID")
    withdraw_theirs = tab.post(f"/me/submissions/{theirs.id}/withdraw", data={"csrf": csrf})
    assert withdraw_theirs.status_code == 404
    world.session.expire_all()
    assert not world.session.get(Submission, theirs.id).withdrawn  # type: ignore[union-attr]
    assert "beta" not in other.text and b_token not in other.text

    clock.at = AFTER  # the end passed: the selections lock (auto-selection fills NL)
    locked = tab.post(f"/me/submissions/{mine.id}/unselect", data={"csrf": csrf})
    api = client.delete(f"/api/v1/submissions/{mine.id}/selection", headers=bearer(token))
    assert (locked.status_code, api.json()["error"]) == (409, "selection_locked")
    assert text_of(locked.text, "me-error") == api.json()["detail"]["message"]
    page = tab.get("/me").text
    assert text_of(page, f"mark-{mine.id}") == "selected (auto)"
    assert f'action="/me/submissions/{mine.id}/unselect"' not in page


@pytest.mark.parametrize("action", ["select", "withdraw"])
def test_the_forms_are_refused_without_the_csrf_token_or_from_another_site(
        world: World, phased: tuple[Any, SetClock], action: str) -> None:
    client, _ = phased
    set_challenge(world, challenge_toml())
    a, token = new_team(world, "alpha")
    sub = entry(world, a, DURING - timedelta(hours=1))
    tab = sign_in(client, token)
    csrf = form_csrf(tab.get("/me").text, f"/me/submissions/{sub.id}/{action}")
    path = f"/me/submissions/{sub.id}/{action}"
    for data, headers, told in (({}, {}, "csrf"), ({"csrf": "0" * 64}, {}, "csrf"),
                                ({"csrf": csrf}, {"Origin": "http://evil.example"}, "site"),
                                ({"csrf": csrf}, {"Sec-Fetch-Site": "cross-site"}, "site")):
        response = tab.post(path, data=data, headers=headers)
        assert response.status_code == 303, (data, headers)
        assert response.headers["location"] == f"/me?err={told}", (data, headers)
    assert "another site" in tab.get("/me?err=site").text
    # A bearer token is no session: the form wants a signed-in browser.
    anonymous = TestClient(client.app, follow_redirects=False)
    response = anonymous.post(path, data={"csrf": csrf}, headers=bearer(token))
    assert response.status_code == 303 and response.headers["location"].startswith("/login")
    world.session.expire_all()
    assert selections(world) == []
    assert not world.session.get(Submission, sub.id).withdrawn  # type: ignore[union-attr]
    assert world.session.execute(select(func.count()).select_from(Submission).where(
        Submission.withdrawn.is_(True))).scalar_one() == 0
    accepted = tab.post(path, data={"csrf": csrf}, headers={"Origin": "http://testserver",
                                                            "Sec-Fetch-Site": "same-origin"})
    assert accepted.status_code == 303 and "msg=" in accepted.headers["location"]


def test_the_submission_page_withdraws_with_the_owners_session(
        world: World, phased: tuple[Any, SetClock]) -> None:
    client, _ = phased
    set_challenge(world, challenge_toml())
    a, token = new_team(world, "alpha")
    _, b_token = new_team(world, "beta")
    sub = entry(world, a, DURING - timedelta(hours=1))
    anonymous = client.get(f"/submissions/{sub.id}").text
    assert 'name="token"' in anonymous and "/me/submissions/" not in anonymous
    other = sign_in(client, b_token).get(f"/submissions/{sub.id}").text
    assert 'name="token"' in other and "/me/submissions/" not in other
    owner = sign_in(client, token)
    page = owner.get(f"/submissions/{sub.id}").text
    assert 'name="token"' not in page
    assert "<details" not in page.split("<body", 1)[0]  # nothing of the page in <head>
    done = owner.post(f"/me/submissions/{sub.id}/withdraw",
                      data={"csrf": form_csrf(page, f"/me/submissions/{sub.id}/withdraw")})
    assert done.status_code == 303
    world.session.expire_all()
    assert world.session.get(Submission, sub.id).withdrawn  # type: ignore[union-attr]


# -------------------------------------------------------------- ladder and post-challenge


def test_ladder_feedback_and_post_challenge_marks_show_on_the_rows(
        world: World, phased: tuple[Any, SetClock]) -> None:
    client, clock = phased
    set_challenge(world, challenge_toml(feedback="ladder"))
    a, token = new_team(world, "alpha")
    first = entry(world, a, DURING - timedelta(hours=3), skill=1.0)
    worse = entry(world, a, DURING - timedelta(hours=2), skill=0.6)
    tab = sign_in(client, token)
    data = tab.get("/me/submissions.json").json()
    api = {s["id"]: s for s in client.get("/api/v1/submissions", headers=bearer(token)).json()}
    rows = {s["id"]: s for s in data["submissions"]}
    assert api[worse.id]["feedback"].startswith("not significantly better than your best (p = ")
    for sid in (first.id, worse.id):
        assert rows[sid]["feedback"] == api[sid]["feedback"]
        assert rows[sid]["feedback_p_value"] == api[sid]["feedback_p_value"]
    assert "public" not in rows[worse.id]["scores"]
    page = tab.get("/me").text
    assert text_of(page, f"feedback-{worse.id}") == api[worse.id]["feedback"]
    assert text_of(page, f"feedback-{first.id}") == api[first.id]["feedback"]

    clock.at = START + timedelta(days=22)  # the post-challenge phase
    late = entry(world, a, clock.at - timedelta(hours=1))
    page = tab.get("/me").text
    row = page[page.index(f'id="sub-{late.id}"'):page.index(f'id="sub-{worse.id}"')]
    assert "post-challenge" in row
    assert f'action="/me/submissions/{late.id}/select"' not in row
    assert {s["id"]: s["post_challenge"] for s in
            tab.get("/me/submissions.json").json()["submissions"]}[late.id] is True
