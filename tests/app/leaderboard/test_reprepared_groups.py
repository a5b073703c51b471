"""Tie groups when a country's test set is prepared again (app/leaderboard/service.py,
groups.py): a board built after that shows the new labels' groups, as a fresh service does."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from app_factories import World, add_team

from app.jobs.scoring import upsert_scores
from app.leaderboard.service import LeaderboardService
from app.leaderboard.view import Board
from app.models import Submission
from app.storage import load_predictions
from evaluator.data.prepared import PreparedData
from evaluator.scoring import score_predictions


def ctr_groups(board: Board) -> dict[int, int | None]:
    """The tie group of each entry's NL ctr cell."""
    assert board.groups == "ready"
    return {row.submissions["NL"]: row.cells[("NL", "ctr")].group for row in board.rows}


def prepare_again_with_flipped_clicks(folder: Path) -> PreparedData:
    """NL prepared again (a new folder in its place, a new meta.json): every click label is
    flipped, so the best entry on the old set is the worst on the new one."""
    staged = folder.with_name("NL-new")
    shutil.copytree(folder, staged)
    click = 1 - np.load(staged / "click.npy")
    conversion = (click & (np.random.default_rng(3).random(click.shape[0]) < 0.4)).astype(
        np.int8)
    np.save(staged / "click.npy", click.astype(np.int8))
    np.save(staged / "conversion.npy", conversion)
    meta = json.loads((staged / "meta.json").read_text())
    meta.update(n_clicks=int(click.sum()), n_conversions=int(conversion.sum()),
                source_sha256="1" * 64)
    (staged / "meta.json").write_text(json.dumps(meta))
    shutil.rmtree(folder)
    staged.rename(folder)
    return PreparedData.open(folder)


def test_tie_groups_follow_a_test_set_prepared_again_and_rescored(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    import evaluator.scoring as scoring

    strong = world.submit(add_team(world.session, "strong"), world.predictions(3.0))
    weak = world.submit(add_team(world.session, "weak"), world.predictions(0.0))
    service = LeaderboardService(world.settings)
    assert ctr_groups(service.board(world.session, "NL", "mean_auc")) == {strong.id: 1,
                                                                         weak.id: 2}

    # The organisers prepare NL again and rescore every submission on it (scorer version 2).
    data = prepare_again_with_flipped_clicks(Path(world.settings.data_dir) / "prepared" / "NL")
    monkeypatch.setattr(scoring, "SCORER_VERSION", "2")
    for sub in (strong, weak):
        stored = world.session.get(Submission, sub.id)
        assert stored is not None
        predictions = load_predictions(world.settings, stored)
        assert predictions is not None
        upsert_scores(world.session, sub.id, score_predictions(data, predictions))
    world.session.commit()

    fresh = ctr_groups(LeaderboardService(world.settings).board(world.session, "NL",
                                                                "mean_auc"))
    assert fresh == {weak.id: 1, strong.id: 2}
    # The running service noticed the new set (its rows and curves went); its groups must too.
    assert service.prepared("NL") is not None
    assert ctr_groups(service.board(world.session, "NL", "mean_auc")) == fresh
