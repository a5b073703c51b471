"""Verification as an attacker would use it: a checkpoint replaying its file by batch position,
and a checkpoint differing from its file on one private row to learn that row's label."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from app_factories import add_verification, scored_with_checkpoint, verification_row

from app.jobs.context import JobContext
from app.jobs.verification import verify
from evaluator.checkpoint import CheckpointRun
from evaluator.data.prepared import PreparedData


@pytest.fixture
def scored(ctx: JobContext, make_team: Any, make_predictions: Any) -> tuple[int, dict[str, Any]]:
    team, _ = make_team("replayers")
    body, values = make_predictions(seed=7)
    return scored_with_checkpoint(ctx, team.id, body), values


def _by_position(ctr: np.ndarray, cvr: np.ndarray) -> Callable[..., CheckpointRun]:
    """A checkpoint that ignores its inputs: the i-th row it is given gets the i-th value of a
    table it carries (the file, in row order)."""
    def run(_archive: Any, prepared: Any, outputs: str, **_limits: Any) -> CheckpointRun:
        n = PreparedData.open(prepared).n_rows
        return CheckpointRun(ctr=ctr[:n].copy(), cvr=cvr[:n].copy(), ctcvr=ctr[:n] * cvr[:n],
                             torch_version="test", device="cpu", duration_s=0.1,
                             outputs="ctr,cvr")
    return run


def test_a_checkpoint_replaying_its_file_by_batch_position_is_not_verified(
        ctx: JobContext, scored: tuple[int, dict[str, Any]]) -> None:
    sid, values = scored
    vid = add_verification(ctx, sid)
    assert verify(ctx, vid, _by_position(values["ctr"], values["cvr"])) == "done"
    ver = verification_row(ctx, vid)
    assert ver.verified is False
    assert ver.results is not None
    # On the test set as it is, the table matches the file on every row...
    assert all(r["rows_over"] == 0 for r in ver.results["rows"].values())
    # ...but its predictions did not move with the shuffled rows.
    assert all(not r["within_tolerance"] for r in ver.results["permuted"].values())


def test_the_verdict_on_a_one_row_change_does_not_depend_on_that_rows_label(
        ctx: JobContext, scored: tuple[int, dict[str, Any]], settings: Any) -> None:
    sid, values = scored
    data = PreparedData.open(settings.prepared_root / "NL")
    private = ~np.asarray(data.public)
    click = np.asarray(data.click)
    clicked = int(np.flatnonzero(private & (click == 1))[0])
    not_clicked = int(np.flatnonzero(private & (click == 0))[0])
    seen = []
    for row in (clicked, not_clicked):
        ctr = values["ctr"].copy()
        # Top score for that one private row: an AUC comparison would move up for a click
        # and down for no click, and so tell the row's label.
        ctr[row] = 1.0
        vid = add_verification(ctx, sid)
        assert verify(ctx, vid, _feature_keyed(data, ctr, values["cvr"])) == "done"
        ver = verification_row(ctx, vid)
        assert ver.results is not None
        rows = dict(ver.results["rows"])
        assert rows["ctr"]["first_row_over"] == row
        rows["ctr"] = {k: v for k, v in rows["ctr"].items() if k != "first_row_over"}
        rows["ctr"]["max_abs_diff"] = round(rows["ctr"]["max_abs_diff"] - (1.0 - values["ctr"][
            row]), 12)
        seen.append((ver.verified, rows, ver.results["permuted"]))
    assert seen[0] == seen[1]
    assert seen[0][0] is False


def _feature_keyed(data: PreparedData, ctr: np.ndarray, cvr: np.ndarray
                   ) -> Callable[..., CheckpointRun]:
    def key(d: PreparedData, i: int) -> bytes:
        return bytes(d.categorical[i].tobytes() + d.numerical[i].tobytes())

    index = {key(data, i): i for i in range(data.n_rows)}

    def run(_archive: Any, prepared: Any, outputs: str, **_limits: Any) -> CheckpointRun:
        given = PreparedData.open(prepared)
        rows = np.array([index[key(given, i)] for i in range(given.n_rows)])
        return CheckpointRun(ctr=ctr[rows], cvr=cvr[rows], ctcvr=ctr[rows] * cvr[rows],
                             torch_version="test", device="cpu", duration_s=0.1,
                             outputs="ctr,cvr")
    return run
