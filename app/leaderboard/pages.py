"""Server-rendered HTML of the leaderboard (Jinja2, autoescaped) and the plots embedded in it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from markupsafe import Markup

from app.web import render as web
from evaluator.compare import pareto_front
from evaluator.schema import TASKS, Task

from .plots import Interval, ScatterPoint, ci_svg, roc_svg, scatter_svg
from .reference import SOURCES
from .view import TASK_LABELS, Board

web.add_globals(task_labels=TASK_LABELS,
                sources={key: value[1] for key, value in SOURCES.items()})
render = web.render


def ranking_query(board: Board) -> str:
    return "" if board.ranking == "mean_auc" else "?rank=average_rank"


def ci_plots(board: Board) -> list[Markup]:
    """One CI plot per column of a country board, entries in the board's order."""
    plots: list[Markup] = []
    for column in board.columns:
        country, task = column
        intervals: list[Interval] = []
        for row in board.rows:
            cell = row.cells.get(column)
            if cell is None or cell.auc is None:
                continue
            intervals.append(Interval(label=f"{row.team} · {row.method}", auc=cell.auc,
                                      low=cell.ci_low, high=cell.ci_high, group=cell.group))
        for ref in board.reported:
            if ref.source == "challenge" and column in ref.auc:
                intervals.append(Interval(label=f"{ref.method} (reported)", auc=ref.auc[column],
                                          low=None, high=None, reported=True))
        # Markup: the SVG builders escape every piece of text themselves.
        plots.append(Markup(ci_svg(intervals, title=f"{country} {TASK_LABELS[task]} AUC")))
    return plots


def scatter_plot(board: Board, x_task: Task = "ctr", y_task: Task = "cvr") -> Markup:
    if board.country is None:
        raise ValueError("the scatter is drawn for one country")
    cc = board.country
    measured: dict[int, tuple[float, float]] = {}
    labels: dict[int, str] = {}
    for index, row in enumerate(board.rows):
        x = row.cells.get((cc, x_task))
        y = row.cells.get((cc, y_task))
        if x is not None and y is not None and x.auc is not None and y.auc is not None:
            measured[index] = (x.auc, y.auc)
            labels[index] = f"{row.team} · {row.method}"
    front = pareto_front(measured)
    points = [ScatterPoint(labels[i], x, y, on_front=i in front) for i, (x, y) in measured.items()]
    for ref in board.reported:
        if ref.source == "challenge" and (cc, x_task) in ref.auc and (cc, y_task) in ref.auc:
            points.append(ScatterPoint(f"{ref.method} (reported)", ref.auc[(cc, x_task)],
                                       ref.auc[(cc, y_task)], on_front=False, reported=True))
    svg = scatter_svg(points, title=f"{cc}: {TASK_LABELS[x_task]} vs {TASK_LABELS[y_task]} AUC",
                      x_label=f"{TASK_LABELS[x_task]} AUC", y_label=f"{TASK_LABELS[y_task]} AUC")
    return Markup(svg)


def roc_plots(
    curves: Mapping[Task, Sequence[tuple[float, float]]],
    aucs: Mapping[Task, tuple[float | None, float | None, float | None]],
) -> list[Markup]:
    plots: list[Markup] = []
    for task in TASKS:
        if task not in curves:
            continue
        auc, low, high = aucs.get(task, (None, None, None))
        ci = (low, high) if low is not None and high is not None else None
        plots.append(Markup(roc_svg(curves[task], title=f"{TASK_LABELS[task]} ROC",
                                    auc=auc, ci=ci)))
    return plots


def overall_page(board: Board) -> str:
    return render("overall.html", board=board, nav="overall", query=ranking_query(board))


def country_page(board: Board) -> str:
    return render("country.html", board=board, nav=board.country, query=ranking_query(board),
                  ci_plots=ci_plots(board), scatter=scatter_plot(board))
