"""The ROC curve and the metrics on a submission's page are no label oracle (issue 14, item 4).

The attack: a file gives 190 chosen public rows distinct scores and every other row 0. A curve
drawn per distinct score then has one step per chosen row, up for a click and right for none,
and the page gave all 190 labels away. Curves are now drawn through score quantiles that each
hold at least 1 % of the split's rows, and log-losses are rounded before the reveal."""

from __future__ import annotations

import itertools
import re
import shutil
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from app_factories import World, add_team, app_client, token_for, write_prepared
from fastapi.testclient import TestClient

from app import challenge
from app.disclosure import PARTICIPANT_DIGITS
from evaluator.predictions import Predictions

ROWS = 40_000
CHOSEN = 190
# roc_svg's plot area: x = 44 + fpr * 244, y = 28 + (1 - tpr) * 234.
LEFT, TOP, WIDTH, HEIGHT = 44.0, 28.0, 244.0, 234.0


@pytest.fixture
def big_world(world: World) -> World:
    folder = world.settings.prepared_root / "NL"
    shutil.rmtree(folder)
    world.data = write_prepared(folder, n_rows=ROWS)
    return world


@pytest.fixture
def client(big_world: World) -> Iterator[TestClient]:
    yield from app_client(big_world)


def attack(world: World) -> tuple[int, np.ndarray]:
    """Submit the attack file; returns its id and the chosen rows, highest score first."""
    public = np.flatnonzero(np.asarray(world.data.public))
    chosen = np.random.default_rng(5).choice(public, CHOSEN, replace=False)
    ctr = np.zeros(ROWS)
    ctr[chosen] = np.linspace(0.99, 0.5, CHOSEN)
    sub = world.submit(add_team(world.session, "mallory"),
                       Predictions(ctr=ctr, cvr=np.full(ROWS, 0.5), ctcvr=ctr * 0.5))
    return sub.id, chosen


def curve_points(page: str) -> list[tuple[float, float]]:
    found = re.search(r"<polyline points='([^']*)'[^>]*class='roc-curve'", page)
    assert found is not None, "the page draws a ROC curve"
    points = []
    for pair in found.group(1).split():
        x, y = (float(v) for v in pair.split(","))
        points.append(((x - LEFT) / WIDTH, 1 - (y - TOP) / HEIGHT))
    return points


def read_labels(points: list[tuple[float, float]], n: int) -> dict[int, int]:
    """The attacker's reading: step k (after the origin) is the k-th chosen row; a step straight
    up is a click, straight right none; any other step tells nothing about one row."""
    labels: dict[int, int] = {}
    for k, ((x0, y0), (x1, y1)) in enumerate(itertools.pairwise(points)):
        if k >= n:
            break
        if x1 == x0 and y1 > y0:
            labels[k] = 1
        elif y1 == y0 and x1 > x0:
            labels[k] = 0
    return labels


def test_the_190_rows_attack_reads_no_label_off_the_curve(big_world: World,
                                                          client: TestClient) -> None:
    sid, chosen = attack(big_world)
    page = client.get(f"/submissions/{sid}")
    assert page.status_code == 200
    points = curve_points(page.text)
    truth = np.asarray(big_world.data.click)[chosen]
    read = read_labels(points, CHOSEN)
    right = sum(1 for k, label in read.items() if truth[k] == label)
    assert right == 0, f"{right} of {CHOSEN} labels read off the curve"
    # at most one point per 1 % of the rows, plus the origin
    assert len(points) <= 102


def metric_decimals(value: float) -> int:
    text = repr(value)
    return len(text.split(".")[1]) if "." in text and "e" not in text else 0


def loglosses(scores: dict[str, dict[str, dict[str, Any]]]) -> list[float]:
    return [float(t["logloss"]) for tasks in scores.values() for t in tasks.values()
            if t.get("logloss") is not None]


def test_log_losses_are_rounded_for_participants_until_the_reveal(big_world: World,
                                                                  client: TestClient) -> None:
    sid, _ = attack(big_world)
    mallory = add_team(big_world.session, "mallory-2")
    big_world.session.commit()
    token = token_for(big_world, mallory)
    seen = loglosses(client.get(f"/api/v1/results/{sid}").json()["scores"])
    board = client.get("/api/v1/leaderboard/nl").json()
    seen += [c["logloss"] for e in board["entries"] for tasks in e["cells"].values()
             for c in tasks.values() if c["logloss"] is not None]
    assert seen
    assert all(metric_decimals(v) <= PARTICIPANT_DIGITS for v in seen), seen
    # the team's own view of its submissions, through the API
    own = big_world.submit(mallory, Predictions(ctr=np.linspace(0.01, 0.99, ROWS),
                                                cvr=np.full(ROWS, 0.3),
                                                ctcvr=np.full(ROWS, 0.2)))
    mine = client.get(f"/api/v1/submissions/{own.id}",
                      headers={"Authorization": f"Bearer {token}"}).json()
    assert all(metric_decimals(v) <= PARTICIPANT_DIGITS for v in loglosses(mine["scores"]))
    # after the reveal, full precision
    challenge.set_revealed(big_world.session, None, True)
    big_world.session.commit()
    after = loglosses(client.get(f"/api/v1/results/{sid}").json()["scores"])
    assert any(metric_decimals(v) > PARTICIPANT_DIGITS for v in after), after


@pytest.mark.parametrize("revealed", [False, True])
def test_the_boards_p_values_and_log_losses_are_rounded_until_the_reveal(
        revealed: bool) -> None:
    from leaderboard_factories import T0, entry

    from app.leaderboard.view import Column, build_board
    from evaluator.compare import TieResult
    from evaluator.schema import TASKS

    a = entry(1, "a", "m", "NL", 0.7123456789, team_id=1)
    b = entry(2, "b", "m", "NL", 0.7012345678, team_id=2)
    a = replace(a, results={t: replace(r, logloss=0.123456789) for t, r in a.results.items()})
    groups: dict[Column, dict[int, TieResult]] = {
        ("NL", task): {1: TieResult(0.71, 1, 1, None), 2: TieResult(0.70, 1, 1, 0.0123456789)}
        for task in TASKS}
    board = build_board([a, b], split="public", revealed=revealed, country="NL",
                        ranking="mean_auc", groups=groups, groups_state="ready", reported=[],
                        generated_at=T0)
    cells = {row.team: row.cells[("NL", "ctr")] for row in board.rows}
    full = {"p": 0.0123456789, "logloss": 0.123456789}
    rounded = {"p": 0.0123, "logloss": 0.1235}
    expected = full if revealed else rounded
    assert cells["b"].p_value == expected["p"]
    assert cells["a"].logloss == expected["logloss"]
