"""Server-side SVG plots of app/plots.py: well-formed, faithful to their data, and inert text."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from app.leaderboard.plots import (
    HistoryPoint,
    Interval,
    ScatterPoint,
    ci_svg,
    history_svg,
    roc_svg,
    scatter_svg,
)

SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = "<script>alert(1)</script>"


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def texts(root: ET.Element) -> list[str]:
    return ["".join(el.itertext()) for el in root.iter(f"{SVG}text")]


def test_roc_plot_draws_every_point_of_the_curve() -> None:
    points = [(0.0, 0.0), (0.1, 0.5), (0.4, 0.8), (1.0, 1.0)]
    root = parse(roc_svg(points, title="CTR", auc=0.8123, ci=(0.8, 0.82)))
    curve = next(el for el in root.iter(f"{SVG}polyline") if el.get("class") == "roc-curve")
    coords = [tuple(map(float, p.split(","))) for p in curve.get("points", "").split()]
    assert len(coords) == len(points)
    # (0, 0) is bottom-left and (1, 1) top-right in SVG coordinates (y grows downwards).
    assert coords[0][0] < coords[-1][0]
    assert coords[0][1] > coords[-1][1]
    assert any("AUC 0.8123 [0.8000, 0.8200]" in t for t in texts(root))


def test_roc_plot_without_curve_says_why() -> None:
    root = parse(roc_svg([], title="CVR"))
    assert not list(root.iter(f"{SVG}polyline"))
    assert any("one class only" in t for t in texts(root))


def test_ci_plot_draws_one_dot_per_entry_and_bars_where_an_interval_exists() -> None:
    intervals = [
        Interval("team a / m1", 0.73, 0.72, 0.74, group=1),
        Interval("team b / m2", 0.725, 0.71, 0.74, group=1),
        Interval("DNN (reported)", 0.7203, None, None, reported=True),
    ]
    root = parse(ci_svg(intervals, title="NL CTR"))
    assert len(list(root.iter(f"{SVG}circle"))) == 3
    bars = [el for el in root.iter(f"{SVG}line") if el.get("class") == "ci-bar"]
    assert len(bars) == 2
    # The bar spans its interval: a wider interval gives a longer bar.
    widths = [float(b.get("x2", 0)) - float(b.get("x1", 0)) for b in bars]
    assert widths[0] < widths[1]


def test_scatter_joins_and_names_only_the_non_dominated_entries() -> None:
    points = [
        ScatterPoint("front-a", 0.72, 0.80, on_front=True),
        ScatterPoint("front-b", 0.74, 0.78, on_front=True),
        ScatterPoint("dominated", 0.71, 0.77, on_front=False),
    ]
    root = parse(scatter_svg(points, title="NL", x_label="CTR AUC", y_label="CVR AUC"))
    assert [el.get("class") for el in root.iter(f"{SVG}polyline")] == ["pareto-front"]
    labels = texts(root)
    assert "front-a" in labels
    assert "front-b" in labels
    assert "dominated" not in labels
    assert len(list(root.iter(f"{SVG}circle"))) == 3


def test_hostile_names_stay_text_in_every_plot() -> None:
    svgs = [
        roc_svg([(0.0, 0.0), (1.0, 1.0)], title=HOSTILE),
        ci_svg([Interval(HOSTILE, 0.7, 0.69, 0.71, group=1)], title=HOSTILE),
        scatter_svg([ScatterPoint(HOSTILE, 0.7, 0.8, on_front=True)], title=HOSTILE,
                    x_label=HOSTILE, y_label="y"),
    ]
    for svg in svgs:
        assert "<script" not in svg
        root = parse(svg)
        assert not [el for el in root.iter() if el.tag.endswith("script")]
        assert any(HOSTILE in t for t in texts(root))


def test_empty_plots_are_still_valid_svg() -> None:
    for svg in (ci_svg([], title="none"), scatter_svg([], title="none", x_label="x",
                                                     y_label="y")):
        assert parse(svg).tag == f"{SVG}svg"


def test_control_characters_in_names_keep_the_svg_well_formed() -> None:
    svg = ci_svg([Interval("bad\x00name\x07", 0.7, 0.69, 0.71, group=1)], title="t\x1b")
    root = parse(svg)
    assert any("bad\ufffdname\ufffd" in t for t in texts(root))


def test_history_plot_draws_each_submission_with_its_interval_in_time_order() -> None:
    points = [HistoryPoint(at=100.0, series="NL CTR", auc=0.70, low=0.68, high=0.72,
                           submission_id=1),
              HistoryPoint(at=300.0, series="NL CTR", auc=0.74, low=0.73, high=0.75,
                           submission_id=3),
              HistoryPoint(at=200.0, series="NL CTR", auc=0.72, low=None, high=None,
                           submission_id=2),
              HistoryPoint(at=200.0, series="NL CVR", auc=0.60, low=0.55, high=0.65,
                           submission_id=2)]
    root = parse(history_svg(points, title=f"{HOSTILE}: AUC over time"))
    dots = [el for el in root.iter(f"{SVG}circle") if el.get("class") == "history-point"]
    assert len(dots) == 4
    bars = [el for el in root.iter(f"{SVG}line") if el.get("class") == "ci-bar"]
    assert len(bars) == 3  # the point without an interval has none
    (line,) = [el for el in root.iter(f"{SVG}polyline") if el.get("class") == "history-line"]
    xs = [float(p.split(",")[0]) for p in line.get("points", "").split()]
    ys = [float(p.split(",")[1]) for p in line.get("points", "").split()]
    assert xs == sorted(xs) and ys == sorted(ys, reverse=True)  # later and higher AUC
    for bar in bars:  # a vertical bar: the interval spans AUC values, not time
        assert bar.get("x1") == bar.get("x2") and bar.get("y1") != bar.get("y2")
    assert f"{HOSTILE}: AUC over time" in texts(root)
    assert {"NL CTR", "NL CVR"} <= set(texts(root))


def test_history_plot_without_points_says_so() -> None:
    assert "no scored submissions yet" in texts(parse(history_svg([], title="m")))
