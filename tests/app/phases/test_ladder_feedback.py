"""Ladder feedback and rounding, through the real app (stored predictions, real scorer, paired
DeLong on the public rows), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
from app_factories import (
    SetClock,
    World,
    challenge_toml,
    new_team,
)
from phases_factories import AFTER, DURING, at, bearer, set_challenge
from sqlalchemy import select

from app.models import Score
from app.phases.ladder import decide


def shown_cell(client: Any, headers: dict[str, str] | None = None) -> dict[str, Any]:
    board = client.get("/api/v1/leaderboard/NL", headers=headers or {}).json()
    [row] = board["entries"]
    cell: dict[str, Any] = row["cells"]["NL"]["ctr"]
    return cell


def test_ladder_does_not_move_on_a_not_better_entry_and_moves_on_a_better_one(
        world: World, phase_client: tuple[Any, SetClock]) -> None:
    client, _ = phase_client
    set_challenge(world.settings, challenge_toml(feedback="ladder"))
    a, a_token = new_team(world, "alpha")
    _, org_token = new_team(world, "org", organiser=True)
    first = at(world, world.submit(a, world.predictions(1.0)), DURING - timedelta(hours=3))
    worse = at(world, world.submit(a, world.predictions(0.6)), DURING - timedelta(hours=2))
    assert shown_cell(client)["submission_id"] == first.id
    own = client.get(f"/api/v1/submissions/{worse.id}", headers=bearer(a_token)).json()
    assert "public" not in own["scores"]
    assert own["feedback"].startswith("not significantly better than your best (p = ")
    assert own["feedback_p_value"] > 0.05
    # Organisers see the entry as it is.
    assert shown_cell(client, bearer(org_token))["submission_id"] == worse.id
    better = at(world, world.submit(a, world.predictions(4.0)), DURING - timedelta(hours=1))
    assert shown_cell(client)["submission_id"] == better.id
    own = client.get(f"/api/v1/submissions/{better.id}", headers=bearer(a_token)).json()
    assert "public" in own["scores"] and own["feedback_p_value"] < 0.05


def test_exact_feedback_shows_every_latest_entry(world: World,
                                                 phase_client: tuple[Any, SetClock]) -> None:
    client, _ = phase_client
    set_challenge(world.settings, challenge_toml(feedback="exact"))
    a, a_token = new_team(world, "alpha")
    at(world, world.submit(a, world.predictions(1.0)), DURING - timedelta(hours=3))
    worse = at(world, world.submit(a, world.predictions(0.6)), DURING - timedelta(hours=2))
    assert shown_cell(client)["submission_id"] == worse.id
    own = client.get(f"/api/v1/submissions/{worse.id}", headers=bearer(a_token)).json()
    assert "public" in own["scores"] and own["feedback"] is None


def decimals(value: float) -> int:
    text = repr(value)
    return len(text.split(".")[1]) if "." in text else 0


def test_public_figures_are_rounded_for_participants_until_the_end(
        world: World, phase_client: tuple[Any, SetClock]) -> None:
    client, clock = phase_client
    set_challenge(world.settings, challenge_toml())
    a, a_token = new_team(world, "alpha")
    _, org_token = new_team(world, "org", organiser=True)
    sub = at(world, world.submit(a, world.predictions(1.0)), DURING - timedelta(hours=1))
    stored = world.session.execute(select(Score.auc).where(
        Score.submission_id == sub.id, Score.split == "public", Score.task == "ctr")
    ).scalar_one()
    assert stored is not None and round(stored, 4) != round(stored, 6)
    cell = shown_cell(client)
    assert cell["auc"] == round(stored, 4)
    assert max(decimals(cell["ci_low"]), decimals(cell["ci_high"])) <= 4
    csv_text = client.get("/api/v1/leaderboard/NL?format=csv").text
    assert f"{stored:.4f}" in csv_text and f"{stored:.6f}" not in csv_text
    own = client.get(f"/api/v1/submissions/{sub.id}", headers=bearer(a_token)).json()
    assert own["scores"]["public"]["ctr"]["auc"] == round(stored, 4)
    result = client.get(f"/api/v1/results/{sub.id}").json()
    assert result["scores"]["public"]["ctr"]["auc"] == round(stored, 4)
    assert f"{stored:.4f}" in client.get("/country/NL").text
    # Organisers see full precision.
    assert shown_cell(client, bearer(org_token))["auc"] == round(stored, 6)
    organiser_view = client.get(f"/api/v1/submissions/{sub.id}", headers=bearer(org_token))
    assert organiser_view.json()["scores"]["public"]["ctr"]["auc"] == stored
    # Everyone after the end.
    clock.at = AFTER
    assert shown_cell(client)["auc"] != round(stored, 4)
    own = client.get(f"/api/v1/submissions/{sub.id}", headers=bearer(a_token)).json()
    assert own["scores"]["public"]["ctr"]["auc"] == stored


def test_decide_releases_only_a_significant_one_sided_improvement() -> None:
    rng = np.random.default_rng(0)
    labels = (rng.random(4000) < 0.3).astype(np.int8)
    best = labels * 1.0 + rng.normal(size=4000)
    same_skill = labels * 1.0 + rng.normal(size=4000)
    much_better = labels * 3.0 + rng.normal(size=4000)
    assert not decide([(labels, best, best)], 0.05).released
    worse = decide([(labels, best, much_better)], 0.05)
    assert not worse.released and worse.p_value is not None and worse.p_value > 0.5
    assert decide([(labels, much_better, best)], 0.05).released
    tie = decide([(labels, same_skill, best)], 0.05)
    assert tie.p_value is not None
    assert tie.released == (tie.p_value < 0.05)
