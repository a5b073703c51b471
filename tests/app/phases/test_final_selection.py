"""Final selection, the lock at the end, auto-selection and the final board, through the real
app on one injectable clock, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from app_factories import (
    START,
    SetClock,
    World,
    challenge_toml,
    new_team,
)
from phases_factories import AFTER, DURING, at, bearer, set_challenge, skewed
from sqlalchemy import select, update

from app.models import Score, Submission


def entry(world: World, who: Any, pub: float, priv: float, seed: int, method: str = "m") -> Any:
    return at(world, world.submit(who, skewed(world, pub, priv, seed), method=method),
              DURING - timedelta(hours=seed))


def choose(client: Any, token: str, sid: int, method: str = "PUT") -> Any:
    return client.request(method, f"/api/v1/submissions/{sid}/selection",
                          headers=bearer(token))


def test_selection_refusals_each_with_its_code(world: World,
                                               phase_client: tuple[Any, SetClock]) -> None:
    client, clock = phase_client
    set_challenge(world.settings, challenge_toml(selection_limit=1))
    a, a_token = new_team(world, "alpha")
    b, _ = new_team(world, "beta")
    mine = entry(world, a, 2.0, 2.0, 1)
    other = entry(world, a, 1.0, 1.0, 2)
    theirs = entry(world, b, 1.0, 1.0, 3)
    failed = Submission(team_id=a.id, country="NL", method="m", state="failed",
                        created_at=DURING)
    world.session.add(failed)
    world.session.commit()
    assert choose(client, a_token, theirs.id).status_code == 404
    refused = choose(client, a_token, failed.id)
    assert refused.status_code == 409 and refused.json()["error"] == "submission_failed"
    ok = choose(client, a_token, mine.id)
    assert ok.status_code == 200 and ok.json()["mark"] == "manual", ok.text
    over = choose(client, a_token, other.id)
    assert over.status_code == 409 and over.json()["error"] == "selection_limit"
    assert over.json()["detail"]["selected"] == [mine.id]
    shown = client.get(f"/api/v1/submissions/{mine.id}", headers=bearer(a_token)).json()
    assert shown["selection"] == "manual"
    me = client.get("/api/v1/me", headers=bearer(a_token)).json()
    assert me["selections"] == [{"submission_id": mine.id, "country": "NL", "auto": False}]
    clock.at = AFTER
    locked = choose(client, a_token, other.id)
    assert locked.status_code == 409 and locked.json()["error"] == "selection_locked"
    assert choose(client, a_token, mine.id, "DELETE").json()["error"] == "selection_locked"


def test_final_board_before_the_end_is_409_except_to_organisers(
        world: World, phase_client: tuple[Any, SetClock]) -> None:
    client, _ = phase_client
    set_challenge(world.settings, challenge_toml())
    a, a_token = new_team(world, "alpha")
    _, org_token = new_team(world, "org", organiser=True)
    entry(world, a, 1.0, 1.0, 1)
    for headers in ({}, bearer(a_token)):
        response = client.get("/api/v1/leaderboard/final", headers=headers)
        assert response.status_code == 409, response.text
        assert response.json()["error"] == "challenge_not_ended"
    preview = client.get("/api/v1/leaderboard/final", headers=bearer(org_token))
    assert preview.status_code == 200 and preview.json()["preview"] is True
    assert client.get("/final").status_code == 409


def test_lock_auto_selects_best_public_and_ranks_on_private_of_selected_only(
        world: World, phase_client: tuple[Any, SetClock]) -> None:
    client, clock = phase_client
    set_challenge(world.settings, challenge_toml(selection_limit=1))
    a, a_token = new_team(world, "alpha")
    b, b_token = new_team(world, "beta")
    # Alpha's best private entry is not selected: it must not count.
    hidden_gem = entry(world, a, 0.2, 4.0, 1, method="gem")
    chosen = entry(world, a, 1.5, 0.5, 2, method="chosen")
    assert choose(client, a_token, chosen.id).status_code == 200
    # Beta selects nothing: its best public entry is chosen at the lock, marked auto.
    b_best_public = entry(world, b, 3.0, 1.0, 3, method="public-star")
    entry(world, b, 0.5, 3.0, 4, method="private-star")
    clock.at = AFTER
    final = client.get("/api/v1/leaderboard/final")
    assert final.status_code == 200, final.text
    body = final.json()
    assert body["frozen"] is True and body["split"] == "private"
    rows = {e["team"]: e for e in body["entries"]}
    assert rows["alpha"]["countries"]["NL"]["submission_id"] == chosen.id
    assert rows["alpha"]["countries"]["NL"]["auto"] is False
    assert rows["beta"]["countries"]["NL"]["submission_id"] == b_best_public.id
    assert rows["beta"]["countries"]["NL"]["auto"] is True
    assert rows["beta"]["countries"]["NL"]["method"] == "public-star"
    private = world.session.execute(select(Score.auc).where(
        Score.submission_id == chosen.id, Score.split == "private", Score.task == "ctr")
    ).scalar_one()
    assert private is not None
    assert rows["alpha"]["countries"]["NL"]["cells"]["ctr"]["auc"] == round(private, 6)
    assert rows["alpha"]["countries"]["NL"]["cells"]["ctr"]["group"] is not None
    assert hidden_gem.id not in {c["submission_id"] for r in rows.values()
                                 for c in r["countries"].values()}
    me = client.get("/api/v1/me", headers=bearer(b_token)).json()
    assert me["selections_locked"] is True
    assert me["selections"] == [{"submission_id": b_best_public.id, "country": "NL",
                                 "auto": True}]
    # A rescore after the end is shown apart; the published figure does not move.
    world.session.execute(update(Score).where(Score.submission_id == chosen.id,
                                              Score.split == "private").values(auc=0.99))
    world.session.commit()
    again = client.get("/api/v1/leaderboard/final").json()
    rows = {e["team"]: e for e in again["entries"]}
    assert rows["alpha"]["countries"]["NL"]["cells"]["ctr"]["auc"] == round(private, 6)
    assert [r["submission_id"] for r in again["rescored_since"]] == [chosen.id]
    assert client.get("/final").status_code == 200


def test_a_team_with_ten_methods_gets_one_final_row(world: World,
                                                    phase_client: tuple[Any, SetClock]) -> None:
    client, clock = phase_client
    set_challenge(world.settings, challenge_toml())
    a, _ = new_team(world, "alpha")
    for i in range(10):
        entry(world, a, 1.0 + i / 10, 1.0 + i / 10, i + 1, method=f"method-{i}")
    board = client.get("/api/v1/leaderboard").json()
    assert len(board["entries"]) == 10  # the all-methods view stays
    clock.at = AFTER
    final = client.get("/api/v1/leaderboard/final").json()
    assert [e["team"] for e in final["entries"]] == ["alpha"]


def test_post_challenge_entries_are_marked_and_never_ranked_finally(
        world: World, phase_client: tuple[Any, SetClock]) -> None:
    client, clock = phase_client
    set_challenge(world.settings, challenge_toml())
    a, a_token = new_team(world, "alpha")
    during = entry(world, a, 1.0, 1.0, 1, method="during")
    late = at(world, world.submit(a, skewed(world, 4.0, 4.0, 9), method="late"),
              START + timedelta(days=22))
    clock.at = START + timedelta(days=23)
    assert choose(client, a_token, late.id).json()["error"] == "selection_locked"
    final = client.get("/api/v1/leaderboard/final").json()
    assert final["entries"][0]["countries"]["NL"]["submission_id"] == during.id
    board = client.get("/api/v1/leaderboard/NL").json()
    marks = {e["method"]: e["cells"]["NL"]["ctr"]["post_challenge"] for e in board["entries"]}
    assert marks == {"during": False, "late": True}


def test_withdrawn_entry_leaves_the_board_organisers_still_see_it(
        world: World, phase_client: tuple[Any, SetClock]) -> None:
    client, _ = phase_client
    a, a_token = new_team(world, "alpha")
    _, b_token = new_team(world, "beta")
    _, org_token = new_team(world, "org", organiser=True)
    sub = entry(world, a, 1.0, 1.0, 1)
    assert client.post(f"/api/v1/submissions/{sub.id}/withdraw",
                       headers=bearer(b_token)).status_code == 404
    done = client.post(f"/api/v1/submissions/{sub.id}/withdraw", headers=bearer(a_token))
    assert done.status_code == 200 and done.json()["withdrawn"] is True
    assert client.get("/api/v1/leaderboard").json()["entries"] == []
    seen = client.get(f"/api/v1/submissions/{sub.id}", headers=bearer(org_token)).json()
    assert seen["withdrawn"] is True
    audit = client.get("/api/v1/organiser/audit", headers=bearer(org_token)).json()
    assert any(e["action"] == "withdraw" and e["target_id"] == sub.id for e in audit)


def test_the_submission_page_form_withdraws_with_the_teams_token(
        world: World, phase_client: tuple[Any, SetClock]) -> None:
    client, _ = phase_client
    a, a_token = new_team(world, "alpha")
    _, b_token = new_team(world, "beta")
    sub = entry(world, a, 1.0, 1.0, 1)
    assert 'action="/submissions/' in client.get(f"/submissions/{sub.id}").text
    for token, outcome in ((b_token, "err=not_found"), ("wrong", "err=token")):
        refused = client.post(f"/submissions/{sub.id}/withdraw", data={"token": token},
                              follow_redirects=False)
        assert refused.status_code == 303 and refused.headers["location"].endswith(outcome)
    assert len(client.get("/api/v1/leaderboard").json()["entries"]) == 1
    done = client.post(f"/submissions/{sub.id}/withdraw", data={"token": a_token},
                       follow_redirects=False)
    assert done.headers["location"].endswith("msg=withdrawn")
    assert client.get("/api/v1/leaderboard").json()["entries"] == []


def test_the_lock_happens_once(world: World, phase_client: tuple[Any, SetClock]) -> None:
    from sqlalchemy import func

    from app.db import session_factory
    from app.models import AuditLog, FinalEntry, Selection
    from app.phases import store
    from app.phases.selection import ensure_locked

    set_challenge(world.settings, challenge_toml())
    a, _ = new_team(world, "alpha")
    entry(world, a, 1.0, 1.0, 1)
    entry(world, a, 2.0, 2.0, 2)
    factory = session_factory(world.engine)
    for _ in range(2):
        with factory() as session:
            assert ensure_locked(session, store.load(session), AFTER)
    world.session.expire_all()
    count = world.session.execute
    assert count(select(func.count()).select_from(FinalEntry)).scalar_one() == 1
    assert count(select(func.count()).select_from(Selection)
                 .where(Selection.auto.is_(True))).scalar_one() == 2
    assert count(select(func.count()).select_from(AuditLog)
                 .where(AuditLog.action == "lock")).scalar_one() == 1
