"""Rendering the leaderboard pages from a board (app/leaderboard/pages.py)."""

from __future__ import annotations

from leaderboard_factories import T0, entry, parse

from app.leaderboard.pages import country_page, overall_page
from app.leaderboard.reference import all_reported_rows
from app.leaderboard.view import Board, Column, build_board
from evaluator.compare import TieResult
from evaluator.schema import COUNTRIES, Country

XSS_TEAM = "<script>alert(1)</script>"
FORMULA_METHOD = '=HYPERLINK("http://evil.example","x")'


def make_board(country: Country | None = None) -> Board:
    entries = [entry(1 + i, XSS_TEAM, FORMULA_METHOD, cc, 0.71, team_id=1)
               for i, cc in enumerate(COUNTRIES)]
    entries += [entry(10 + i, "organisers", "ESMM", cc, 0.72, team_id=2, baseline=True)
                for i, cc in enumerate(COUNTRIES)]
    groups: dict[Column, dict[int, TieResult]] = {
        ("NL", "ctr"): {11: TieResult(0.72, 1, 11, None), 1: TieResult(0.71, 2, 1, None)}}
    return build_board(entries, split="public", revealed=False, country=country,
                       ranking="mean_auc", groups=groups, groups_state="ready",
                       reported=all_reported_rows(), generated_at=T0)


def test_hostile_team_name_is_text_not_markup() -> None:
    for html in (overall_page(make_board()), country_page(make_board("NL"))):
        page = parse(html)
        assert "script" not in page.tags
        assert any(XSS_TEAM in t for t in page.text)
        assert FORMULA_METHOD in "".join(page.text)


def test_overall_page_has_twelve_auc_columns_and_group_badges() -> None:
    html = overall_page(make_board())
    assert html.count("class=\"task\"") == 24  # the measured and the reported table
    assert ">G1<" in html
    assert ">G2<" in html
    assert "mean AUC = (1/|C|)" in html
    assert "baseline" in html


def test_country_page_embeds_ci_plots_and_the_pareto_scatter() -> None:
    page = parse(country_page(make_board("NL")))
    assert page.tags.count("svg") == 4
    assert "Pareto front" in "".join(page.text)


def test_revealed_board_says_it_shows_the_private_split() -> None:
    board = make_board()
    board.revealed = True
    board.split = "private"
    assert "revealed by the organisers" in overall_page(board)
