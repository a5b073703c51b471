"""Caching of tie groups per leaderboard column (app/leaderboard/groups.py)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from app.leaderboard.groups import ColumnData, GroupCache
from evaluator.schema import Country, Split, Task

N_ROWS = 400


class ArrayStore:
    """Column data held in memory; counts how often each column is loaded."""

    def __init__(self, signals: dict[int, float], *, missing: set[int] | None = None) -> None:
        rng = np.random.default_rng(7)
        self.labels = (rng.random(N_ROWS) < 0.3).astype(np.int8)
        self.labels[:2] = (0, 1)
        self.scores = {sid: s * self.labels + rng.normal(size=N_ROWS) for sid, s in
                       signals.items()}
        self.missing = missing or set()
        self.loads: list[tuple[Split, Country, Task, tuple[int, ...]]] = []

    def load(self, split: Split, country: Country, task: Task,
             ids: Sequence[int]) -> ColumnData | None:
        self.loads.append((split, country, task, tuple(ids)))
        if self.missing & set(ids):
            return None
        return ColumnData(labels=self.labels, scores={i: self.scores[i] for i in ids})

    def rows(self, country: Country) -> int:
        return N_ROWS


def test_small_columns_are_grouped_in_the_request() -> None:
    store = ArrayStore({1: 2.0, 2: 2.0, 3: 0.1})
    store.scores[2] = store.scores[1].copy()
    groups, state = GroupCache().groups("public", {("NL", "ctr"): [1, 2, 3]}, store.load,
                                        store.rows)
    assert state == "ready"
    column = groups[("NL", "ctr")]
    assert column[1].group == column[2].group == 1
    assert column[3].group == 2


def test_unchanged_columns_are_not_recomputed() -> None:
    store = ArrayStore({1: 1.0, 2: 0.5, 3: 0.2})
    cache = GroupCache()
    cache.groups("public", {("NL", "ctr"): [1, 2]}, store.load, store.rows)
    cache.groups("public", {("NL", "ctr"): [1, 2]}, store.load, store.rows)
    assert len(store.loads) == 1
    cache.groups("public", {("NL", "ctr"): [1, 2, 3]}, store.load, store.rows)
    assert len(store.loads) == 2
    cache.groups("private", {("NL", "ctr"): [1, 2, 3]}, store.load, store.rows)
    assert len(store.loads) == 3


def test_large_columns_are_computed_in_the_background() -> None:
    store = ArrayStore({1: 1.0, 2: 0.5})
    cache = GroupCache(inline_work=10)
    groups, state = cache.groups("public", {("NL", "cvr"): [1, 2]}, store.load, store.rows)
    # The call hands the column to the background thread and returns without its groups.
    assert state == "pending"
    assert groups == {}
    cache.wait(timeout=60)
    groups, state = cache.groups("public", {("NL", "cvr"): [1, 2]}, store.load, store.rows)
    assert state == "ready"
    assert set(groups[("NL", "cvr")]) == {1, 2}


def test_columns_without_stored_predictions_are_unavailable() -> None:
    store = ArrayStore({1: 1.0, 2: 0.5}, missing={2})
    groups, state = GroupCache().groups("public", {("NL", "ctr"): [1, 2]}, store.load,
                                        store.rows)
    assert state == "unavailable"
    assert groups == {}
