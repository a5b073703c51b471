"""The board as JSON and as CSV.

CSV cells holding text that a spreadsheet would read as a formula (starting with =, +, -, @, a
tab or carriage return, OWASP's list, or `|`, which LibreOffice and old Excel read as a DDE
call such as ``|cmd!A1``) are prefixed with a single quote, so an exported team name like
``=HYPERLINK(...)`` stays text when the file is opened.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from .view import Board, Cell, Column

FORMULA_PREFIXES = ("=", "+", "-", "@", "|", "\t", "\r")


def neutralise(value: str) -> str:
    """Make a text cell inert in spreadsheets.

    >>> neutralise("=HYPERLINK(\\"http://x\\")")
    '\\'=HYPERLINK("http://x")'
    >>> neutralise("team-a")
    'team-a'
    """
    return "'" + value if value.startswith(FORMULA_PREFIXES) else value


def _round(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(value, digits)


def cell_json(cell: Cell, digits: int = 6) -> dict[str, Any]:
    data: dict[str, Any] = {
        "submission_id": cell.submission_id,
        "auc": _round(cell.auc, digits),
        "ci_low": _round(cell.ci_low, digits),
        "ci_high": _round(cell.ci_high, digits),
        "logloss": _round(cell.logloss),
        "n_pos": cell.n_pos,
        "n_neg": cell.n_neg,
        "group": cell.group,
        "p_value_vs_group_leader": _round(cell.p_value, 8),
        "best": cell.best,
        "verified": cell.verified,
        "post_challenge": cell.post_challenge,
    }
    if cell.auc is None:
        data["reason"] = cell.reason
    return data


def _nested(cells: dict[Column, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for (country, task), value in cells.items():
        out.setdefault(country, {})[task] = value
    return out


def board_json(board: Board) -> dict[str, Any]:
    return {
        "split": board.split,
        "revealed": board.revealed,
        "country": board.country,
        "ranking": board.ranking,
        "formula": board.formula,
        "missing_columns": board.missing_rule,
        "groups": {"state": board.groups, "rule": board.group_rule},
        "scorer_versions": board.scorer_versions,
        "generated_at": board.generated_at.isoformat(),
        "digits": board.digits,
        "columns": [{"country": c, "task": t} for c, t in board.columns],
        "ranked_columns": [{"country": c, "task": t} for c, t in board.ranked_columns],
        "entries": [
            {
                "rank": row.rank,
                "team": row.team,
                "method": row.method,
                "baseline": row.is_baseline,
                "mean_auc": _round(row.mean_auc, board.digits),
                "average_rank": _round(row.average_rank, 4),
                "complete": row.complete,
                "n_cells": row.n_cells,
                "submissions": dict(row.submissions),
                "cells": _nested({c: cell_json(cell, board.digits)
                                  for c, cell in row.cells.items()}),
            }
            for row in board.rows
        ],
        "reported": [
            {
                "method": ref.method,
                "source": ref.source,
                "mean_auc": _round(ref.mean_auc),
                "complete": ref.complete,
                "auc": _nested(dict(ref.auc)),
            }
            for ref in board.reported
        ],
    }


def board_csv(board: Board) -> str:
    """One line per measured row, then the reported rows (kind = reported, no CI or group)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header = ["kind", "rank", "team", "method", "baseline", "mean_auc", "average_rank",
              "complete"]
    for country, task in board.columns:
        prefix = f"{country}_{task}"
        header += [f"{prefix}_auc", f"{prefix}_ci_low", f"{prefix}_ci_high", f"{prefix}_group",
                   f"{prefix}_submission_id"]
    writer.writerow(header)

    def number(value: float | None, digits: int = board.digits) -> str:
        return "" if value is None else f"{value:.{digits}f}"

    for row in board.rows:
        line = ["measured", "" if row.rank is None else str(row.rank), neutralise(row.team),
                neutralise(row.method), "yes" if row.is_baseline else "no",
                number(row.mean_auc), number(row.average_rank, 4),
                "yes" if row.complete else "no"]
        for column in board.columns:
            cell = row.cells.get(column)
            if cell is None:
                line += ["", "", "", "", ""]
            else:
                line += [number(cell.auc), number(cell.ci_low), number(cell.ci_high),
                         "" if cell.group is None else str(cell.group), str(cell.submission_id)]
        writer.writerow(line)
    for ref in board.reported:
        line = ["reported", "", neutralise(ref.source), neutralise(ref.method), "yes",
                number(ref.mean_auc), "", "yes" if ref.complete else "no"]
        for column in board.columns:
            line += [number(ref.auc.get(column)), "", "", "", ""]
        writer.writerow(line)
    return buffer.getvalue()


__all__ = ["board_csv", "board_json", "neutralise"]
