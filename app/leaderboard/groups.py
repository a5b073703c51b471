"""Tie groups of every leaderboard column, computed from stored predictions and cached.

A column's groups depend only on which submissions it holds (and the split), so the cache key is
(split, country, task, the set of submission ids): a new or hidden entry changes the key and the
column is recomputed; nothing else is. Small columns are computed in the request; large ones
(real test sets hold millions of rows) in one background thread, while the page says "pending".
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from evaluator.compare import TieResult, tie_groups
from evaluator.data.prepared import PreparedDataError
from evaluator.schema import Country, Split, Task

from .view import Column, GroupsState

log = logging.getLogger(__name__)

# Rows × entries below which a column is grouped inside the request (a few milliseconds).
INLINE_WORK = 2_000_000

ColumnKey = tuple[Split, Country, Task, frozenset[int]]


@dataclass(frozen=True)
class ColumnData:
    """Labels of a column's rows and, per submission, its scores for the same rows."""

    labels: npt.NDArray[np.int8]
    scores: dict[int, npt.NDArray[np.floating]]


# Loads the data of one column for the given submissions (in the given order), or None when some
# submission has no stored predictions (groups then stay unavailable for that column). Raises
# PreparedDataError while the test set is missing (tried again later).
ColumnLoader = Callable[[Split, Country, Task, Sequence[int]], ColumnData | None]
RowCounter = Callable[[Country], int | None]


class GroupCache:
    def __init__(self, *, inline_work: int = INLINE_WORK, max_columns: int = 512,
                 on_change: Callable[[], None] | None = None) -> None:
        """`on_change` is called when a background computation has stored its groups, so that
        boards cached while it was pending can be rebuilt."""
        self._results: dict[ColumnKey, dict[int, TieResult] | None] = {}
        self._pending: dict[ColumnKey, Future[None]] = {}
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._inline_work = inline_work
        self._max_columns = max_columns
        self._on_change = on_change
        # Paired tests per (split, country, task) by submission ids: predictions and labels of
        # a submission never change, so a column that gains an entry reuses the others' tests.
        self._tests: dict[tuple[Split, Country, Task], dict[tuple[int, int], Any]] = {}

    def clear(self) -> None:
        with self._lock:
            self._results.clear()

    def forget_country(self, country: Country) -> None:
        """Drop a country's groups and paired tests: its test set was prepared again, so its
        labels may differ."""
        with self._lock:
            self._results = {k: v for k, v in self._results.items() if k[1] != country}
            self._tests = {k: v for k, v in self._tests.items() if k[1] != country}

    def _store(self, key: ColumnKey, value: dict[int, TieResult] | None) -> None:
        with self._lock:
            if len(self._results) >= self._max_columns:
                # Oldest first: dicts keep insertion order, and old keys belong to old entry sets.
                for stale in list(self._results)[: self._max_columns // 4]:
                    del self._results[stale]
            self._results[key] = value
            self._pending.pop(key, None)

    def _forget(self, key: ColumnKey) -> None:
        """A failed computation leaves no result: the next request tries again."""
        with self._lock:
            self._results.pop(key, None)
            self._pending.pop(key, None)

    def _compute(self, key: ColumnKey, ordered: Sequence[int], loader: ColumnLoader,
                 notify: bool = False) -> None:
        try:
            self._compute_column(key, ordered, loader)
        finally:
            if notify and self._on_change is not None:
                self._on_change()

    def _compute_column(self, key: ColumnKey, ordered: Sequence[int],
                        loader: ColumnLoader) -> None:
        split, country, task, _ = key
        try:
            data = loader(split, country, task, ordered)
            if data is None:
                self._store(key, None)
                return
            if int(data.labels.min(initial=0)) == int(data.labels.max(initial=0)):
                # One class only: no AUC, hence no groups.
                self._store(key, None)
                return
            with self._lock:
                memo = self._tests.setdefault((split, country, task), {})
            result = tie_groups(data.labels, data.scores, memo=memo)
            members = set(ordered)
            with self._lock:
                # Bounded by the column's size: tests of entries no longer in it are dropped.
                for pair in [p for p in memo if not (p[0] in members and p[1] in members)]:
                    del memo[pair]
            self._store(key, result)
        except PreparedDataError as exc:
            # Not kept: the prepared test set may be put back.
            log.info("tie groups of %s %s %s wait for the test set: %s", split, country, task,
                     exc)
            self._forget(key)
        except Exception:
            log.exception("tie groups of %s %s %s failed", split, country, task)
            self._forget(key)

    def groups(
        self,
        split: Split,
        columns: Mapping[Column, Sequence[int]],
        loader: ColumnLoader,
        rows_of: RowCounter,
    ) -> tuple[dict[Column, dict[int, TieResult]], GroupsState]:
        """Groups of each column, computing what is missing; and the state of the whole set.

        `columns[(country, task)]` lists the column's submission ids, best placed first for
        tie-breaking (e.g. earliest submitted first).
        """
        out: dict[Column, dict[int, TieResult]] = {}
        pending = False
        unavailable = False
        for (country, task), ids in columns.items():
            if not ids:
                continue
            key: ColumnKey = (split, country, task, frozenset(ids))
            with self._lock:
                known = key in self._results
                result = self._results.get(key)
                running = key in self._pending
            if not known and not running:
                n_rows = rows_of(country) or 0
                if n_rows * len(ids) <= self._inline_work:
                    self._compute(key, list(ids), loader)
                    with self._lock:
                        known = True
                        result = self._results.get(key)
                else:
                    self._submit(key, list(ids), loader)
                    running = True
            if known and result is not None:
                out[(country, task)] = result
            elif known:
                unavailable = True
            else:
                pending = True
        state: GroupsState = "pending" if pending else ("unavailable" if unavailable else "ready")
        return out, state

    def _submit(self, key: ColumnKey, ordered: list[int], loader: ColumnLoader) -> None:
        with self._lock:
            if key in self._pending:
                return
            if self._executor is None:
                # One thread: DeLong on millions of rows is CPU-bound, and the web workers must
                # keep serving while it runs.
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="groups")
            self._pending[key] = self._executor.submit(self._compute, key, ordered, loader,
                                                       True)

    def wait(self, timeout: float | None = None) -> None:
        """Block until the background computations started so far are done (tests, CLI)."""
        with self._lock:
            futures = list(self._pending.values())
        for future in futures:
            future.result(timeout=timeout)
