"""Comparing leaderboard entries: statistical tie groups, rankings, Pareto fronts, ROC points.

Pure functions (numpy only, no web or DB). A leaderboard *column* is one (country, task) cell of
the 12-cell matrix; every entry of a column was scored on the same rows, so two entries are
compared with the paired DeLong test (SPEC "Metrics").

Tie groups: the best entry of a column leads group 1; every entry whose AUC is not significantly
different from the leader's (two-sided paired DeLong p >= alpha) joins group 1. The best entry
among those left leads group 2, and so on. Groups therefore say "cannot be told apart from the
group's leader on these rows", which is what a reader of a leaderboard wants to know.

Rankings over the columns (rows that lack a column are ranked below every complete row, because a
mean over fewer cells is not comparable with a mean over all of them):

* mean AUC: ``mean_auc(e) = (1 / |C|) * sum_{c in C} AUC_c(e)``;
* average rank: ``avg_rank(e) = (1 / |C|) * sum_{c in C} rank_c(e)``, ``rank_c`` being the rank
  of ``e`` within column ``c`` (1 = best AUC, ties share the mean of the ranks they span).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar, cast

import numpy as np
import numpy.typing as npt

from evaluator.metrics import delong_paired_test, roc_curve_points

K = TypeVar("K", bound=Hashable)
C = TypeVar("C", bound=Hashable)

DEFAULT_ALPHA = 0.05

MEAN_AUC_FORMULA = "mean AUC = (1/|C|) · Σ_c AUC_c over the leaderboard's columns C"
AVERAGE_RANK_FORMULA = (
    "average rank = (1/|C|) · Σ_c rank_c, rank_c = place in column c (1 = best; ties share the "
    "mean of their places)"
)


class PairedTestResult(Protocol):
    """What `evaluator.metrics.delong_paired_test` returns (fields used here)."""

    @property
    def auc_a(self) -> float | None: ...

    @property
    def auc_b(self) -> float | None: ...

    @property
    def p_value(self) -> float: ...


PairedTest = Callable[
    [npt.NDArray[np.integer] | npt.NDArray[np.bool_], npt.NDArray[np.floating],
     npt.NDArray[np.floating]],
    PairedTestResult,
]


def _default_paired_test() -> PairedTest:
    return cast(PairedTest, delong_paired_test)


@dataclass(frozen=True)
class TieResult:
    """Where one entry of a column stands.

    `group` is 1 for the top group. `leader` is the key of the entry leading that group and
    `p_value` the two-sided paired DeLong p-value against it (None for a group's leader).
    """

    auc: float
    group: int
    leader: Hashable
    p_value: float | None

    @property
    def is_leader(self) -> bool:
        return self.p_value is None


def tie_groups(
    labels: npt.NDArray[np.integer] | npt.NDArray[np.bool_],
    scores: Mapping[K, npt.NDArray[np.floating]],
    *,
    alpha: float = DEFAULT_ALPHA,
    paired_test: PairedTest | None = None,
    memo: MutableMapping[tuple[K, K], PairedTestResult] | None = None,
) -> dict[K, TieResult]:
    """Statistical tie groups of the entries of one column.

    `labels` are the column's 0/1 labels; `scores[key]` the entry's scores for the same rows in
    the same order. Entries are ordered by AUC (ties by key order in `scores`, so callers pass
    them in a meaningful order, e.g. earliest submission first). `memo` keeps the paired tests
    by (key, key) across calls: when a column gains one entry, only its own tests run (the
    caller must use a fresh memo when the labels or an entry's scores change).

    >>> import numpy as np
    >>> y = np.array([0, 0, 1, 1, 0, 1, 0, 1])
    >>> s = np.array([0.1, 0.2, 0.8, 0.7, 0.3, 0.9, 0.4, 0.6])
    >>> groups = tie_groups(y, {"a": s, "b": s.copy()})
    >>> groups["a"].group, groups["b"].group, groups["b"].leader
    (1, 1, 'a')
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    if not scores:
        return {}
    y = np.asarray(labels)
    if y.ndim != 1:
        raise ValueError(f"labels must be one-dimensional, got shape {y.shape}")
    for key, s in scores.items():
        if np.shape(s) != y.shape:
            raise ValueError(
                f"scores of entry {key!r} have shape {np.shape(s)}, labels have {y.shape}"
            )
    test = paired_test if paired_test is not None else _default_paired_test()

    keys = list(scores)
    if memo is None:
        memo = {}

    def compare(a: K, b: K) -> tuple[float, float, float]:
        """(auc of a, auc of b, p) from one paired test, reusing an earlier (b, a) test."""
        if (a, b) not in memo and (b, a) in memo:
            auc_b, auc_a, p = compare(b, a)
            return auc_a, auc_b, p
        if (a, b) not in memo:
            memo[(a, b)] = test(y, scores[a], scores[b])
        r = memo[(a, b)]
        if r.auc_a is None or r.auc_b is None:
            raise ValueError("the labels hold one class only: no AUC, hence no tie groups")
        return float(r.auc_a), float(r.auc_b), float(r.p_value)

    # AUCs come from the same test code as the p-values, so that the ordering and the groups
    # can never disagree about which entry is better; testing the first entry against each
    # other gives every AUC, and those tests are reused when the first entry leads.
    first = keys[0]
    aucs: dict[K, float] = {first: compare(first, keys[1] if len(keys) > 1 else first)[0]}
    for key in keys[1:]:
        aucs[key] = compare(first, key)[1]
    order = sorted(range(len(keys)), key=lambda i: (-aucs[keys[i]], i))
    remaining = [keys[i] for i in order]

    results: dict[K, TieResult] = {}
    group = 0
    while remaining:
        group += 1
        leader = remaining[0]
        results[leader] = TieResult(auc=aucs[leader], group=group, leader=leader, p_value=None)
        rest: list[K] = []
        for key in remaining[1:]:
            p = compare(leader, key)[2]
            if np.isnan(p) or p >= alpha:
                # NaN arises when both entries rank every pair identically (zero variance of the
                # difference): they cannot be told apart, so they tie.
                results[key] = TieResult(auc=aucs[key], group=group, leader=leader, p_value=p)
            else:
                rest.append(key)
        remaining = rest
    return results


@dataclass(frozen=True)
class RankedRow(Generic[K]):
    """One row of a ranking. `rank` is None for rows that have no cell at all."""

    key: K
    value: float | None  # mean AUC or average rank, over the row's own cells
    n_cells: int
    complete: bool
    rank: int | None


def _rank_rows(
    values: Mapping[K, float | None],
    n_cells: Mapping[K, int],
    n_columns: int,
    *,
    higher_is_better: bool,
) -> list[RankedRow[K]]:
    keys = list(values)

    def sort_key(i: int) -> tuple[int, float, int]:
        key = keys[i]
        value = values[key]
        complete = n_cells[key] == n_columns
        if value is None:
            return (2, 0.0, i)
        return (0 if complete else 1, -value if higher_is_better else value, i)

    order = sorted(range(len(keys)), key=sort_key)
    rows: list[RankedRow[K]] = []
    place = 0
    previous: tuple[int, float] | None = None
    for position, i in enumerate(order, start=1):
        key = keys[i]
        value = values[key]
        complete = n_cells[key] == n_columns
        rank: int | None = None
        if value is not None:
            current = (0 if complete else 1, value)
            # Equal values share a place ("1, 1, 3" competition ranking).
            place = place if previous == current else position
            previous = current
            rank = place
        rows.append(RankedRow(key=key, value=value, n_cells=n_cells[key], complete=complete,
                              rank=rank))
    return rows


def rank_by_mean_auc(
    cells: Mapping[K, Mapping[C, float | None]], columns: Sequence[C]
) -> list[RankedRow[K]]:
    """Rank rows by the mean of their AUCs over `columns` (best first).

    Rows with every column come first; rows missing some come after them, ordered by the mean of
    what they have; rows with none come last, unranked.

    >>> rows = rank_by_mean_auc({"a": {"x": 0.7, "y": 0.9}, "b": {"x": 0.8, "y": 0.9},
    ...                          "c": {"x": 0.99}}, ["x", "y"])
    >>> [(r.key, r.rank, r.complete) for r in rows]
    [('b', 1, True), ('a', 2, True), ('c', 3, False)]
    """
    values: dict[K, float | None] = {}
    counts: dict[K, int] = {}
    for key, row in cells.items():
        present = [float(row[c]) for c in columns if row.get(c) is not None]  # type: ignore[arg-type]
        counts[key] = len(present)
        values[key] = float(np.mean(present)) if present else None
    return _rank_rows(values, counts, len(columns), higher_is_better=True)


def column_ranks(values: Mapping[K, float]) -> dict[K, float]:
    """Rank within one column: 1 for the highest AUC; tied AUCs share the mean of their places.

    >>> column_ranks({"a": 0.9, "b": 0.8, "c": 0.9})
    {'a': 1.5, 'b': 3.0, 'c': 1.5}
    """
    keys = list(values)
    sorted_values = sorted((values[k] for k in keys), reverse=True)
    ranks: dict[K, float] = {}
    for key in keys:
        v = values[key]
        first = sorted_values.index(v) + 1
        last = len(sorted_values) - sorted_values[::-1].index(v)
        ranks[key] = (first + last) / 2.0
    return ranks


def rank_by_average_rank(
    cells: Mapping[K, Mapping[C, float | None]], columns: Sequence[C]
) -> list[RankedRow[K]]:
    """Rank rows by their average place over `columns` (lower is better).

    Each column ranks only the rows that have it; a row's value is the mean of its places.
    Incomplete rows come after complete ones, as in `rank_by_mean_auc`.

    >>> rows = rank_by_average_rank({"a": {"x": 0.7, "y": 0.95}, "b": {"x": 0.8, "y": 0.9}},
    ...                             ["x", "y"])
    >>> [(r.key, r.value, r.rank) for r in rows]
    [('a', 1.5, 1), ('b', 1.5, 1)]
    """
    places: dict[K, list[float]] = {key: [] for key in cells}
    for column in columns:
        column_values = {
            key: float(row[column])  # type: ignore[arg-type]
            for key, row in cells.items()
            if row.get(column) is not None
        }
        for key, rank in column_ranks(column_values).items():
            places[key].append(rank)
    values: dict[K, float | None] = {
        key: (float(np.mean(p)) if p else None) for key, p in places.items()
    }
    counts = {key: len(p) for key, p in places.items()}
    return _rank_rows(values, counts, len(columns), higher_is_better=False)


def pareto_front(points: Mapping[K, tuple[float, float]]) -> set[K]:
    """Keys of the non-dominated points when both coordinates are better higher.

    A point is dominated when another is at least as good on both axes and better on one.

    >>> sorted(pareto_front({"a": (0.7, 0.8), "b": (0.72, 0.79), "c": (0.69, 0.78)}))
    ['a', 'b']
    """
    front: set[K] = set()
    items = list(points.items())
    for key, (x, y) in items:
        dominated = any(
            (ox >= x and oy >= y) and (ox > x or oy > y) for other, (ox, oy) in items
            if other != key
        )
        if not dominated:
            front.add(key)
    return front


def roc_points(
    labels: npt.NDArray[np.integer] | npt.NDArray[np.bool_],
    scores: npt.NDArray[np.floating],
    *,
    max_points: int = 200,
) -> list[tuple[float, float]]:
    """`evaluator.metrics.roc_curve_points` as (false positive rate, true positive rate) pairs,
    the form a plot draws: from (0, 0) to (1, 1), thinned to about `max_points` points; [] when
    the labels hold one class only (no curve exists).
    """
    fpr, tpr = roc_curve_points(labels, scores, max_points)
    return list(zip(fpr.tolist(), tpr.tolist(), strict=True))


# A point of a curve shown to participants stands for at least this share of the split's rows,
# so no step of it can tell one row's label (issue 14: a plot drawn per distinct score read 190
# chosen rows' labels off the curve).
ROC_MIN_FRACTION = 0.01


def roc_quantile_points(
    labels: npt.NDArray[np.integer] | npt.NDArray[np.bool_],
    scores: npt.NDArray[np.floating],
    *,
    min_fraction: float = ROC_MIN_FRACTION,
) -> list[tuple[float, float]]:
    """The ROC curve through score quantiles: from (0, 0) to (1, 1), each step between two
    points holding at least ``ceil(min_fraction * n)`` rows, so at most ``1/min_fraction + 1``
    points; [] when the labels hold one class only.

    Rows are taken by falling score; a step ends at the first distinct score that brings it to
    the minimum, so rows with equal scores never straddle two steps (a tie group larger than
    the minimum is one step). A last step short of the minimum is merged into the one before.
    """
    if not 0 < min_fraction <= 1:
        raise ValueError(f"min_fraction must be in (0, 1], got {min_fraction}")
    y = np.asarray(labels).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    if y.shape != s.shape or y.ndim != 1:
        raise ValueError(f"labels {y.shape} and scores {s.shape} must be 1-D of one length")
    pos, neg = np.sort(s[y]), np.sort(s[~y])
    if pos.size == 0 or neg.size == 0:
        return []
    n = s.size
    least = max(1, int(np.ceil(min_fraction * n - 1e-9)))
    thresholds = np.unique(s)[::-1]
    # at_least[k]: rows scoring >= thresholds[k]; rises to n at the lowest score.
    at_least = n - np.searchsorted(np.sort(s), thresholds, side="left")
    cuts: list[int] = []
    taken = 0
    while True:
        k = int(np.searchsorted(at_least, taken + least, side="left"))
        if k >= thresholds.size:
            break
        cuts.append(k)
        taken = int(at_least[k])
    if not cuts or at_least[cuts[-1]] != n:
        if cuts:
            cuts.pop()  # the remainder is short of the minimum: it joins the last step
        cuts.append(thresholds.size - 1)
    chosen = thresholds[cuts]
    tps = pos.size - np.searchsorted(pos, chosen, side="left")
    fps = neg.size - np.searchsorted(neg, chosen, side="left")
    points = [(0.0, 0.0)]
    points.extend(zip((fps / neg.size).tolist(), (tps / pos.size).tolist(), strict=True))
    return points
