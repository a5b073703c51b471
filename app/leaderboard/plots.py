"""Server-side SVG plots for the leaderboard pages: pure functions returning SVG strings.

No JavaScript and no network: the pages embed the SVG inline. Every piece of text that reaches a
plot (team and method names above all) goes through `_text`, which escapes it for XML, so a name
like ``<script>`` is drawn as characters and never parsed as markup.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

# Colour-blind-safe palette (Okabe & Ito); the first colour marks the top group.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442")
MUTED = "#8a8f98"
AXIS = "#3c4048"
GRID = "#e4e6ea"
FONT = "font-family='system-ui, -apple-system, Segoe UI, Roboto, sans-serif'"


_CONTROL = {c: "\ufffd" for c in range(32) if c not in (9, 10, 13)}


def _text(value: object) -> str:
    # Control characters are not allowed in XML at all; escaping cannot make them valid.
    return escape(str(value).translate(_CONTROL), quote=True)


def _fmt(value: float) -> str:
    return f"{value:.1f}"


def _nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high]."""
    if high <= low:
        high = low + 1e-3
    raw = (high - low) / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step - 1e-9) * step
    ticks: list[float] = []
    value = first
    while value <= high + 1e-9:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _decimals(ticks: Sequence[float]) -> int:
    if len(ticks) < 2:
        return 2
    step = abs(ticks[1] - ticks[0])
    return max(0, min(4, -math.floor(math.log10(step)) + (0 if step * 10 % 10 == 0 else 1)))


def _svg(width: int, height: int, label: str, body: list[str]) -> str:
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {width} {height}' "
        f"width='{width}' height='{height}' role='img' aria-label='{_text(label)}' {FONT} "
        "font-size='12' class='plot'>"
        f"<title>{_text(label)}</title>" + "".join(body) + "</svg>"
    )


def _empty(width: int, height: int, title: str, message: str) -> str:
    return _svg(width, height, title, [
        f"<text x='{width / 2}' y='18' text-anchor='middle' font-weight='600'>"
        f"{_text(title)}</text>",
        f"<text x='{width / 2}' y='{height / 2}' text-anchor='middle' fill='{MUTED}'>"
        f"{_text(message)}</text>",
    ])


def roc_svg(
    points: Sequence[tuple[float, float]],
    *,
    title: str,
    auc: float | None = None,
    ci: tuple[float, float] | None = None,
    width: int = 300,
    height: int = 300,
) -> str:
    """ROC curve (false positive rate → true positive rate) with the chance diagonal.

    `points` come from `evaluator.compare.roc_quantile_points` (each step at least 1 % of
    the rows, so the curve resolves no single row); an empty list (one class only) draws a
    note instead of a curve.
    """
    if not points:
        return _empty(width, height, title, "no ROC curve: one class only")
    left, right, top, bottom = 44, 12, 28, 38
    pw, ph = width - left - right, height - top - bottom

    def sx(v: float) -> float:
        return left + v * pw

    def sy(v: float) -> float:
        return top + (1.0 - v) * ph

    body = [f"<text x='{width / 2}' y='16' text-anchor='middle' font-weight='600'>"
            f"{_text(title)}</text>"]
    for t in (0.0, 0.25, 0.5, 0.75, 1.0):
        body.append(f"<line x1='{_fmt(sx(t))}' y1='{top}' x2='{_fmt(sx(t))}' y2='{top + ph}' "
                    f"stroke='{GRID}'/>")
        body.append(f"<line x1='{left}' y1='{_fmt(sy(t))}' x2='{left + pw}' y2='{_fmt(sy(t))}' "
                    f"stroke='{GRID}'/>")
        body.append(f"<text x='{_fmt(sx(t))}' y='{top + ph + 14}' text-anchor='middle' "
                    f"fill='{AXIS}' font-size='10'>{t:g}</text>")
        body.append(f"<text x='{left - 5}' y='{_fmt(sy(t) + 3)}' text-anchor='end' "
                    f"fill='{AXIS}' font-size='10'>{t:g}</text>")
    body.append(f"<rect x='{left}' y='{top}' width='{pw}' height='{ph}' fill='none' "
                f"stroke='{AXIS}'/>")
    body.append(f"<line x1='{sx(0)}' y1='{sy(0)}' x2='{sx(1)}' y2='{sy(1)}' stroke='{MUTED}' "
                "stroke-dasharray='4 3'/>")
    path = " ".join(f"{_fmt(sx(x))},{_fmt(sy(y))}" for x, y in points)
    body.append(f"<polyline points='{path}' fill='none' stroke='{PALETTE[0]}' "
                "stroke-width='2' class='roc-curve'/>")
    if auc is not None:
        label = f"AUC {auc:.4f}"
        if ci is not None:
            label += f" [{ci[0]:.4f}, {ci[1]:.4f}]"
        body.append(f"<text x='{left + pw - 6}' y='{top + ph - 8}' text-anchor='end' "
                    f"fill='{PALETTE[0]}' font-weight='600'>{_text(label)}</text>")
    body.append(f"<text x='{left + pw / 2}' y='{height - 6}' text-anchor='middle' "
                f"fill='{AXIS}'>false positive rate</text>")
    body.append(f"<text transform='translate(12 {top + ph / 2}) rotate(-90)' "
                f"text-anchor='middle' fill='{AXIS}'>true positive rate</text>")
    return _svg(width, height, title, body)


@dataclass(frozen=True)
class Interval:
    """One entry of a CI plot. `group` is its statistical tie group (1 = top), if known."""

    label: str
    auc: float
    low: float | None
    high: float | None
    group: int | None = None
    reported: bool = False  # a published number: no interval, drawn hollow


def ci_svg(
    intervals: Sequence[Interval],
    *,
    title: str,
    width: int = 420,
    row_height: int = 20,
) -> str:
    """AUC of each entry as a dot with its 95 % confidence interval as a horizontal bar.

    Entries are drawn in the given order (callers pass them ranked); the colour tells the tie
    group, so overlapping intervals and shared groups read together.
    """
    if not intervals:
        return _empty(width, 80, title, "no entries yet")
    label_w, right, top = 180, 16, 30
    bottom = 34
    height = top + bottom + row_height * len(intervals)
    pw = width - label_w - right
    lows = [i.low if i.low is not None else i.auc for i in intervals]
    highs = [i.high if i.high is not None else i.auc for i in intervals]
    lo, hi = min(lows), max(highs)
    pad = max((hi - lo) * 0.08, 0.002)
    ticks = _nice_ticks(lo - pad, hi + pad, 4)
    x0 = min(ticks[0], lo - pad)
    x1 = max(ticks[-1], hi + pad)
    decimals = _decimals(ticks)

    def sx(v: float) -> float:
        return label_w + (v - x0) / (x1 - x0) * pw

    body = [f"<text x='{width / 2}' y='16' text-anchor='middle' font-weight='600'>"
            f"{_text(title)}</text>"]
    plot_bottom = top + row_height * len(intervals)
    for t in ticks:
        body.append(f"<line x1='{_fmt(sx(t))}' y1='{top - 4}' x2='{_fmt(sx(t))}' "
                    f"y2='{plot_bottom}' stroke='{GRID}'/>")
        body.append(f"<text x='{_fmt(sx(t))}' y='{plot_bottom + 14}' text-anchor='middle' "
                    f"fill='{AXIS}' font-size='10'>{t:.{decimals}f}</text>")
    for index, item in enumerate(intervals):
        cy = top + row_height * index + row_height / 2
        colour = MUTED if item.reported or item.group is None else (
            PALETTE[(item.group - 1) % len(PALETTE)])
        name = item.label if len(item.label) <= 24 else item.label[:23] + "…"
        body.append(f"<text x='{label_w - 8}' y='{_fmt(cy + 4)}' text-anchor='end' "
                    f"fill='{AXIS}'>{_text(name)}</text>")
        tooltip = f"{item.label}: AUC {item.auc:.4f}"
        if item.low is not None and item.high is not None:
            tooltip += f", 95 % CI [{item.low:.4f}, {item.high:.4f}]"
            body.append(f"<line x1='{_fmt(sx(item.low))}' y1='{_fmt(cy)}' "
                        f"x2='{_fmt(sx(item.high))}' y2='{_fmt(cy)}' stroke='{colour}' "
                        "stroke-width='2' class='ci-bar'/>")
            for end in (item.low, item.high):
                body.append(f"<line x1='{_fmt(sx(end))}' y1='{_fmt(cy - 4)}' "
                            f"x2='{_fmt(sx(end))}' y2='{_fmt(cy + 4)}' stroke='{colour}' "
                            "stroke-width='1.5'/>")
        if item.group is not None:
            tooltip += f", group {item.group}"
        if item.reported:
            tooltip += " (reported, not measured here)"
        fill = "white" if item.reported else colour
        body.append(f"<circle cx='{_fmt(sx(item.auc))}' cy='{_fmt(cy)}' r='4' fill='{fill}' "
                    f"stroke='{colour}' stroke-width='1.5'><title>{_text(tooltip)}</title>"
                    "</circle>")
    body.append(f"<text x='{label_w + pw / 2}' y='{height - 6}' text-anchor='middle' "
                f"fill='{AXIS}'>AUC with 95 % DeLong confidence interval</text>")
    return _svg(width, height, title, body)


@dataclass(frozen=True)
class ScatterPoint:
    label: str
    x: float
    y: float
    on_front: bool
    reported: bool = False


def scatter_svg(
    points: Sequence[ScatterPoint],
    *,
    title: str,
    x_label: str,
    y_label: str,
    width: int = 460,
    height: int = 340,
) -> str:
    """Scatter of two AUCs per entry; the non-dominated entries are joined by the Pareto front
    and named, the dominated ones drawn muted (their names show on hover)."""
    if not points:
        return _empty(width, height, title, "no entries with both AUCs yet")
    left, right, top, bottom = 56, 16, 28, 40
    pw, ph = width - left - right, height - top - bottom
    xs = [p.x for p in points]
    ys = [p.y for p in points]
    xpad = max((max(xs) - min(xs)) * 0.1, 0.002)
    ypad = max((max(ys) - min(ys)) * 0.1, 0.002)
    xt = _nice_ticks(min(xs) - xpad, max(xs) + xpad, 4)
    yt = _nice_ticks(min(ys) - ypad, max(ys) + ypad, 4)
    x0, x1 = min(xt[0], min(xs) - xpad), max(xt[-1], max(xs) + xpad)
    y0, y1 = min(yt[0], min(ys) - ypad), max(yt[-1], max(ys) + ypad)

    def sx(v: float) -> float:
        return left + (v - x0) / (x1 - x0) * pw

    def sy(v: float) -> float:
        return top + (1.0 - (v - y0) / (y1 - y0)) * ph

    body = [f"<text x='{width / 2}' y='16' text-anchor='middle' font-weight='600'>"
            f"{_text(title)}</text>"]
    xd, yd = _decimals(xt), _decimals(yt)
    for t in xt:
        body.append(f"<line x1='{_fmt(sx(t))}' y1='{top}' x2='{_fmt(sx(t))}' y2='{top + ph}' "
                    f"stroke='{GRID}'/>")
        body.append(f"<text x='{_fmt(sx(t))}' y='{top + ph + 14}' text-anchor='middle' "
                    f"fill='{AXIS}' font-size='10'>{t:.{xd}f}</text>")
    for t in yt:
        body.append(f"<line x1='{left}' y1='{_fmt(sy(t))}' x2='{left + pw}' y2='{_fmt(sy(t))}' "
                    f"stroke='{GRID}'/>")
        body.append(f"<text x='{left - 5}' y='{_fmt(sy(t) + 3)}' text-anchor='end' "
                    f"fill='{AXIS}' font-size='10'>{t:.{yd}f}</text>")
    body.append(f"<rect x='{left}' y='{top}' width='{pw}' height='{ph}' fill='none' "
                f"stroke='{AXIS}'/>")
    front = sorted((p for p in points if p.on_front), key=lambda p: p.x)
    if len(front) > 1:
        # The front of a two-objective maximisation is a staircase: going right, y only falls.
        steps: list[str] = []
        for a, b in itertools.pairwise(front):
            steps.append(f"{_fmt(sx(a.x))},{_fmt(sy(a.y))} {_fmt(sx(b.x))},{_fmt(sy(a.y))}")
        steps.append(f"{_fmt(sx(front[-1].x))},{_fmt(sy(front[-1].y))}")
        body.append(f"<polyline points='{' '.join(steps)}' fill='none' stroke='{PALETTE[1]}' "
                    "stroke-width='1.5' stroke-dasharray='5 3' class='pareto-front'/>")
    for p in sorted(points, key=lambda p: p.on_front):
        colour = PALETTE[1] if p.on_front else MUTED
        fill = "white" if p.reported else colour
        tooltip = f"{p.label}: {x_label} {p.x:.4f}, {y_label} {p.y:.4f}"
        if p.on_front:
            tooltip += " (non-dominated)"
        radius = 5 if p.on_front else 4
        body.append(f"<circle cx='{_fmt(sx(p.x))}' cy='{_fmt(sy(p.y))}' r='{radius}'"
                    f" fill='{fill}' stroke='{colour}' stroke-width='1.5'>"
                    f"<title>{_text(tooltip)}</title></circle>")
        if p.on_front:
            name = p.label if len(p.label) <= 22 else p.label[:21] + "…"
            anchor = "end" if sx(p.x) > left + pw * 0.7 else "start"
            dx = -7 if anchor == "end" else 7
            body.append(f"<text x='{_fmt(sx(p.x) + dx)}' y='{_fmt(sy(p.y) - 6)}' "
                        f"text-anchor='{anchor}' fill='{AXIS}' font-size='11'>"
                        f"{_text(name)}</text>")
    body.append(f"<text x='{left + pw / 2}' y='{height - 6}' text-anchor='middle' "
                f"fill='{AXIS}'>{_text(x_label)}</text>")
    body.append(f"<text transform='translate(14 {top + ph / 2}) rotate(-90)' "
                f"text-anchor='middle' fill='{AXIS}'>{_text(y_label)}</text>")
    return _svg(width, height, title, body)


@dataclass(frozen=True)
class HistoryPoint:
    """One scored submission of a method: when, which task, its AUC and 95 % interval."""

    at: float  # seconds since the epoch
    series: str  # e.g. "NL CTR"
    auc: float
    low: float | None
    high: float | None
    submission_id: int


def history_svg(
    points: Sequence[HistoryPoint],
    *,
    title: str,
    width: int = 460,
    height: int = 260,
) -> str:
    """AUC over time for one method: a line per series (country and task), each submission a
    dot with its confidence interval as a vertical bar. Time runs left to right by
    submission order when every point shares one instant."""
    if not points:
        return _empty(width, height, title, "no scored submissions yet")
    left, right, top, bottom = 56, 16, 28, 58
    pw, ph = width - left - right, height - top - bottom
    times = [p.at for p in points]
    t0, t1 = min(times), max(times)
    if t1 - t0 < 1e-9:
        t0, t1 = t0 - 1.0, t1 + 1.0
    lows = [p.low if p.low is not None else p.auc for p in points]
    highs = [p.high if p.high is not None else p.auc for p in points]
    pad = max((max(highs) - min(lows)) * 0.08, 0.002)
    ticks = _nice_ticks(min(lows) - pad, max(highs) + pad, 4)
    y0, y1 = min(ticks[0], min(lows) - pad), max(ticks[-1], max(highs) + pad)
    decimals = _decimals(ticks)

    def sx(v: float) -> float:
        return left + (v - t0) / (t1 - t0) * pw

    def sy(v: float) -> float:
        return top + (1.0 - (v - y0) / (y1 - y0)) * ph

    body = [f"<text x='{width / 2}' y='16' text-anchor='middle' font-weight='600'>"
            f"{_text(title)}</text>"]
    for t in ticks:
        body.append(f"<line x1='{left}' y1='{_fmt(sy(t))}' x2='{left + pw}' y2='{_fmt(sy(t))}' "
                    f"stroke='{GRID}'/>")
        body.append(f"<text x='{left - 5}' y='{_fmt(sy(t) + 3)}' text-anchor='end' "
                    f"fill='{AXIS}' font-size='10'>{t:.{decimals}f}</text>")
    body.append(f"<rect x='{left}' y='{top}' width='{pw}' height='{ph}' fill='none' "
                f"stroke='{AXIS}'/>")
    series = sorted({p.series for p in points})
    for index, name in enumerate(series):
        colour = PALETTE[index % len(PALETTE)]
        own = sorted((p for p in points if p.series == name), key=lambda p: (p.at, p.submission_id))
        if len(own) > 1:
            path = " ".join(f"{_fmt(sx(p.at))},{_fmt(sy(p.auc))}" for p in own)
            body.append(f"<polyline points='{path}' fill='none' stroke='{colour}' "
                        "stroke-width='1.5' class='history-line'/>")
        for p in own:
            tooltip = f"{name}, submission {p.submission_id}: AUC {p.auc:.4f}"
            if p.low is not None and p.high is not None:
                tooltip += f", 95 % CI [{p.low:.4f}, {p.high:.4f}]"
                body.append(f"<line x1='{_fmt(sx(p.at))}' y1='{_fmt(sy(p.low))}' "
                            f"x2='{_fmt(sx(p.at))}' y2='{_fmt(sy(p.high))}' stroke='{colour}' "
                            "stroke-width='2' class='ci-bar'/>")
            body.append(f"<circle cx='{_fmt(sx(p.at))}' cy='{_fmt(sy(p.auc))}' r='3.5' "
                        f"fill='{colour}' class='history-point'><title>{_text(tooltip)}</title>"
                        "</circle>")
        lx = left + (index % 4) * (pw / 4)
        ly = top + ph + 16 + (index // 4) * 14
        body.append(f"<rect x='{_fmt(lx)}' y='{_fmt(ly - 8)}' width='10' height='10' "
                    f"fill='{colour}'/><text x='{_fmt(lx + 14)}' y='{_fmt(ly + 1)}' "
                    f"fill='{AXIS}' font-size='11'>{_text(name)}</text>")
    body.append(f"<text transform='translate(14 {top + ph / 2}) rotate(-90)' "
                f"text-anchor='middle' fill='{AXIS}'>AUC (95 % CI)</text>")
    body.append(f"<text x='{left + pw / 2}' y='{height - 4}' text-anchor='middle' "
                f"fill='{AXIS}' font-size='11'>submitted, oldest to newest</text>")
    return _svg(width, height, title, body)
