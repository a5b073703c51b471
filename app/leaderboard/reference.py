"""Published reference results shipped as package data (app/reference/*.csv).

They are claims made elsewhere, shown as "reported" rows apart from what the service measured.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Literal

from evaluator.schema import COUNTRIES, TASKS, Country, Task, parse_country

Source = Literal["challenge", "mtreclib"]

SOURCES: dict[Source, tuple[str, str]] = {
    "challenge": (
        "challenge_baselines.csv",
        "the challenge's published baselines (mean of three runs, early stopping by CVR)",
    ),
    "mtreclib": (
        "mtreclib_results.csv",
        "the multi-task library's published results (mean of five runs; CTR and CTCVR only)",
    ),
}


class ReferenceDataError(Exception):
    """A reference CSV shipped with the package is malformed."""


@dataclass(frozen=True)
class ReportedRow:
    """One published model: its AUC (and log-loss where published) per country and task."""

    method: str
    source: Source
    auc: dict[tuple[Country, Task], float] = field(default_factory=dict)
    logloss: dict[tuple[Country, Task], float] = field(default_factory=dict)


def parse_reference_csv(text: str, source: Source, name: str) -> list[ReportedRow]:
    """Parse `model,country,task,auc[,logloss]` rows, refusing anything out of place."""
    reader = csv.DictReader(io.StringIO(text))
    required = {"model", "country", "task", "auc"}
    if reader.fieldnames is None or not required <= set(reader.fieldnames):
        raise ReferenceDataError(f"{name}: header must hold {sorted(required)}")
    rows: dict[str, ReportedRow] = {}
    for line, record in enumerate(reader, start=2):
        try:
            country = parse_country(record["country"])
            task = record["task"].strip().lower()
            if task not in TASKS:
                raise ValueError(f"unknown task {record['task']!r}")
            auc = float(record["auc"])
            if not 0.0 <= auc <= 1.0:
                raise ValueError(f"auc {auc} outside [0, 1]")
            logloss = record.get("logloss")
        except (ValueError, KeyError, TypeError) as exc:
            raise ReferenceDataError(f"{name} line {line}: {exc}") from exc
        model = record["model"].strip()
        row = rows.setdefault(model, ReportedRow(method=model, source=source))
        key: tuple[Country, Task] = (country, task)
        row.auc[key] = auc
        if logloss:
            row.logloss[key] = float(logloss)
    return list(rows.values())


@cache
def reported_rows(source: Source) -> tuple[ReportedRow, ...]:
    """The published rows of one source, read once from the package data."""
    name, _ = SOURCES[source]
    text = resources.files("app").joinpath("reference", name).read_text(encoding="utf-8")
    return tuple(parse_reference_csv(text, source, name))


def all_reported_rows() -> tuple[ReportedRow, ...]:
    return reported_rows("challenge") + reported_rows("mtreclib")


__all__ = ["COUNTRIES", "SOURCES", "ReportedRow", "all_reported_rows", "reported_rows"]
