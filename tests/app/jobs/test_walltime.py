"""A checkpoint's wall limit comes from its test set's size (app/jobs/walltime.py), not a fixed
30 minutes: a model looping in `forward` holds a worker for the small set's budget only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from app.config import Settings
from app.jobs.context import JobContext
from app.jobs.scoring import score_submission
from app.jobs.walltime import checkpoint_limits, wall_seconds
from app.models import Submission


def test_the_budget_is_a_base_plus_a_per_row_part_capped() -> None:
    s = Settings(checkpoint_wall_base_seconds=60, checkpoint_wall_seconds_per_million_rows=120,
                 checkpoint_wall_max_seconds=1800)
    assert wall_seconds(s, 0) == 60
    assert wall_seconds(s, 5_559_301) == pytest.approx(60 + 120 * 5.559301)
    assert wall_seconds(s, 100_000_000) == 1800
    assert checkpoint_limits(s, 1_000_000).wall_time_s == 180


class LoopsInForward(nn.Module):
    def forward(self, categorical: torch.Tensor, numerical: torch.Tensor) -> torch.Tensor:
        x = numerical[:, :2]
        while bool(x.sum() > -1.0):
            x = x + 1.0
        return torch.sigmoid(x)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.timeout(600)  # the fixed limit it replaces would hold this test for 30 minutes
def test_an_endless_loop_fails_at_the_small_test_sets_budget(settings: Settings,
                                                             make_team: Any,
                                                             tmp_path: Path) -> None:
    quick = settings.model_copy(update={"checkpoint_wall_base_seconds": 8.0,
                                        "checkpoint_wall_seconds_per_million_rows": 0.0})
    ctx = JobContext.create(quick, lambda kind, row_id: None)
    try:
        archive = tmp_path / "loop.pt"
        torch.jit.save(torch.jit.script(LoopsInForward()), str(archive))
        team, _ = make_team("hog")
        with ctx.factory() as session:
            sub = Submission(team_id=team.id, country="NL", method="loop", state="queued",
                             checkpoint_sha256=ctx.store.put_bytes(archive.read_bytes()),
                             outputs="ctr,cvr")
            session.add(sub)
            session.commit()
            sid = sub.id
        assert score_submission(ctx, sid) == "failed"
        with ctx.factory() as session:
            found = session.get(Submission, sid)
            assert found is not None and found.reason is not None
            assert "time" in found.reason.lower() and "8 s" in found.reason, found.reason
    finally:
        ctx.close()
