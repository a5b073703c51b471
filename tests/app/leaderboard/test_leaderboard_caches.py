"""What the leaderboard keeps in memory, and when it lets go (service.py, groups.py)."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from app_factories import World, write_prepared

from app.leaderboard.groups import ColumnData, GroupCache
from app.leaderboard.service import LeaderboardService
from app.leaderboard.view import Column
from evaluator.schema import Country, Split, Task


def test_a_missing_test_set_is_not_remembered(world: World) -> None:
    service = LeaderboardService(world.settings)
    folder = Path(world.settings.data_dir) / "prepared" / "NL"
    moved = folder.with_name("NL-away")
    folder.rename(moved)
    assert service.prepared("NL") is None
    moved.rename(folder)
    found = service.prepared("NL")
    assert found is not None and found.n_rows == world.data.n_rows


def test_a_test_set_prepared_again_is_noticed(world: World) -> None:
    service = LeaderboardService(world.settings)
    first = service.prepared("NL")
    assert first is not None
    assert service.prepared("NL") is first
    folder = Path(world.settings.data_dir) / "prepared" / "NL"
    shutil.rmtree(folder)
    write_prepared(folder, seed=5)
    second = service.prepared("NL")
    assert second is not None and second is not first
    assert not np.array_equal(np.asarray(second.click), np.asarray(first.click))


def test_the_paired_test_memo_keeps_only_the_columns_current_entries() -> None:
    rng = np.random.default_rng(0)
    labels = (rng.random(400) < 0.3).astype(np.int8)
    scores = {sid: rng.random(400) + labels * 0.1 * sid for sid in range(1, 5)}
    cache = GroupCache()

    def loader(_split: Split, _country: Country, _task: Task, ordered: Sequence[int]) -> ColumnData:
        return ColumnData(labels=labels, scores={sid: scores[sid] for sid in ordered})

    full: dict[Column, Sequence[int]] = {("NL", "ctr"): [1, 2, 3, 4]}
    cache.groups("public", full, loader, lambda _c: 400)
    memo = cache._tests[("public", "NL", "ctr")]
    assert {sid for pair in memo for sid in pair} == {1, 2, 3, 4}
    fewer: dict[Column, Sequence[int]] = {("NL", "ctr"): [1, 2]}
    cache.groups("public", fewer, loader, lambda _c: 400)
    assert memo and {sid for pair in memo for sid in pair} <= {1, 2}


def test_a_test_set_missing_while_groups_are_computed_is_tried_again(world: World) -> None:
    from evaluator.data.prepared import PreparedDataError

    calls: list[int] = []
    labels = np.asarray(world.data.click, dtype=np.int8)

    def loader(_split: Split, _country: Country, _task: Task, ordered: Sequence[int]) -> ColumnData:
        calls.append(len(ordered))
        if len(calls) == 1:
            raise PreparedDataError("no prepared test set for NL")
        return ColumnData(labels=labels, scores={sid: np.linspace(0, 1, len(labels))
                                                 for sid in ordered})

    cache = GroupCache()
    columns: dict[Column, Sequence[int]] = {("NL", "ctr"): [1]}
    _, state = cache.groups("public", columns, loader, lambda _c: 10)
    assert state == "unavailable"
    groups, state = cache.groups("public", columns, loader, lambda _c: 10)
    assert state == "ready" and groups[("NL", "ctr")][1].group == 1
    assert calls == [1, 1]
