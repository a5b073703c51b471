"""The wall-time limit of a checkpoint run, from the size of the test set it runs on.

One fixed 30-minute limit let a model that loops in `forward` hold a worker for 30 minutes on
any test set. The budget is a fixed part (process start, torch import, loading; ~3 s measured)
plus a per-row part (the reference MMoE runs ~7,400 rows/s on one CPU thread, so 120 s per
million rows leaves it ~6x headroom on one thread and more on every core), capped. Documented
in docs/checkpoints.md.
"""

from __future__ import annotations

from app.config import Settings
from evaluator.checkpoint import Limits


def wall_seconds(settings: Settings, n_rows: int) -> float:
    budget = (settings.checkpoint_wall_base_seconds
              + settings.checkpoint_wall_seconds_per_million_rows * n_rows / 1_000_000)
    return min(budget, settings.checkpoint_wall_max_seconds)


def checkpoint_limits(settings: Settings, n_rows: int) -> Limits:
    return Limits(wall_time_s=wall_seconds(settings, n_rows))
