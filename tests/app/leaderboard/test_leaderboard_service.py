"""The leaderboard service on a real database, artifact store and prepared test set."""

from __future__ import annotations

import json

import numpy as np
import pytest
from app_factories import World, add_team
from sklearn.metrics import roc_auc_score

from app.leaderboard.export import board_json
from app.leaderboard.groups import GroupCache
from app.leaderboard.service import LeaderboardService
from app.leaderboard.view import Board
from app.organiser import service as organiser


def test_identical_predictions_share_the_top_group_and_a_weak_entry_does_not(
    world: World,
) -> None:
    strong = world.predictions(3.0)
    a = world.submit(add_team(world.session, "a"), strong)
    b = world.submit(add_team(world.session, "b"), strong)
    c = world.submit(add_team(world.session, "c"), world.predictions(0.0))
    board = LeaderboardService(world.settings).board(world.session, "NL", "mean_auc")
    assert board.groups == "ready"
    groups = {row.submissions["NL"]: row.cells[("NL", "ctr")].group for row in board.rows}
    assert groups[a.id] == groups[b.id] == 1
    assert groups[c.id] == 2


def test_board_aucs_are_the_stored_public_scores(world: World) -> None:
    predictions = world.predictions(2.0)
    world.submit(add_team(world.session, "a"), predictions)
    board = LeaderboardService(world.settings).board(world.session, None, "mean_auc")
    public = np.asarray(world.data.public, dtype=bool)
    expected = roc_auc_score(np.asarray(world.data.click)[public], predictions.ctr[public])
    assert board.split == "public"
    assert board.rows[0].cells[("NL", "ctr")].auc == pytest.approx(expected, abs=1e-9)


def test_board_is_reused_until_something_changes(world: World) -> None:
    team = add_team(world.session, "a")
    first = world.submit(team, world.predictions(2.0))
    service = LeaderboardService(world.settings)
    board = service.board(world.session, None, "mean_auc")
    assert service.board(world.session, None, "mean_auc") is board
    organiser.set_hidden(world.session, None, first.id, True, "test")
    world.session.commit()
    after = service.board(world.session, None, "mean_auc")
    assert after is not board
    assert after.rows == []


def test_reveal_switches_the_board_to_the_private_split(world: World) -> None:
    predictions = world.predictions(2.0)
    world.submit(add_team(world.session, "a"), predictions)
    service = LeaderboardService(world.settings)
    organiser.set_revealed(world.session, None, True)
    world.session.commit()
    board = service.board(world.session, None, "mean_auc")
    private = ~np.asarray(world.data.public, dtype=bool)
    expected = roc_auc_score(np.asarray(world.data.click)[private], predictions.ctr[private])
    assert board.split == "private"
    assert board.revealed
    assert board.rows[0].cells[("NL", "ctr")].auc == pytest.approx(expected, abs=1e-9)


def test_groups_are_unavailable_without_stored_predictions(world: World) -> None:
    world.submit(add_team(world.session, "a"), world.predictions(2.0), store=False)
    world.submit(add_team(world.session, "b"), world.predictions(2.0))
    board = LeaderboardService(world.settings).board(world.session, "NL", "mean_auc")
    assert board.groups == "unavailable"
    assert all(c.group is None for row in board.rows for c in row.cells.values())


def test_rendered_json_is_cached_with_the_board(world: World) -> None:
    world.submit(add_team(world.session, "a"), world.predictions(2.0))
    service = LeaderboardService(world.settings)
    calls: list[int] = []

    def render(board: Board) -> bytes:
        calls.append(1)
        return json.dumps(board_json(board)).encode()

    first = service.rendered(world.session, "json", None, "mean_auc", render)
    second = service.rendered(world.session, "json", None, "mean_auc", render)
    assert first == second
    assert len(calls) == 1


def test_roc_curves_come_from_the_stored_predictions(world: World) -> None:
    predictions = world.predictions(2.0)
    submission = world.submit(add_team(world.session, "a"), predictions)
    curves = LeaderboardService(world.settings).roc_curves(world.session, submission.id,
                                                            "public")
    assert curves is not None
    assert set(curves) == {"ctr", "cvr", "ctcvr"}
    # The area under the plotted points is the AUC (no thinning below 200 distinct points is
    # guaranteed, so compare the trapezoid area loosely).
    fpr, tpr = np.array(curves["ctr"]).T
    public = np.asarray(world.data.public, dtype=bool)
    expected = roc_auc_score(np.asarray(world.data.click)[public],
                             predictions.ctr.astype(np.float32)[public])
    assert np.trapezoid(tpr, fpr) == pytest.approx(expected, abs=0.01)


def test_no_roc_curves_without_stored_predictions(world: World) -> None:
    submission = world.submit(add_team(world.session, "a"), world.predictions(2.0),
                              store=False)
    service = LeaderboardService(world.settings)
    assert service.roc_curves(world.session, submission.id, "public") is None


def test_requests_during_a_rebuild_get_the_previous_board(world: World) -> None:
    world.submit(add_team(world.session, "a"), world.predictions(2.0))
    service = LeaderboardService(world.settings)

    def render(board: Board) -> bytes:
        return json.dumps(board_json(board)).encode()

    before = service.rendered(world.session, "json", None, "mean_auc", render)
    world.submit(add_team(world.session, "b"), world.predictions(2.0))
    # Another request is rebuilding (it holds the build lock): this one must not wait.
    service._build_lock.acquire()
    try:
        during = service.rendered(world.session, "json", None, "mean_auc", render)
    finally:
        service._build_lock.release()
    after = service.rendered(world.session, "json", None, "mean_auc", render)
    assert during is before
    assert len(json.loads(after.body)["entries"]) == 2


def test_board_shows_groups_once_the_background_computation_ends(world: World) -> None:
    strong = world.predictions(3.0)
    world.submit(add_team(world.session, "a"), strong)
    world.submit(add_team(world.session, "b"), world.predictions(0.0))
    service = LeaderboardService(world.settings)
    # Every column goes to the background thread, as on a full-size test set.
    service.groups = GroupCache(inline_work=0, on_change=service._groups_changed)

    def render(board: Board) -> bytes:
        return json.dumps(board_json(board)).encode()

    first = json.loads(service.rendered(world.session, "json", "NL", "mean_auc", render).body)
    assert first["groups"]["state"] == "pending"
    service.groups.wait(timeout=60)
    later = json.loads(service.rendered(world.session, "json", "NL", "mean_auc", render).body)
    assert later["groups"]["state"] == "ready"
    assert {e["cells"]["NL"]["ctr"]["group"] for e in later["entries"]} == {1, 2}
