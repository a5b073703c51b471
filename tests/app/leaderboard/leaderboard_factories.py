"""Small factories for leaderboard entries (shared by the leaderboard tests)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

from app.leaderboard.view import Entry, TaskResult
from evaluator.schema import TASKS, Country, Task

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def result(auc: float | None, width: float = 0.01) -> TaskResult:
    if auc is None:
        return TaskResult(None, None, None, None, n_pos=0, n_neg=10, reason="one class only")
    return TaskResult(auc, auc - width, auc + width, 0.1, n_pos=10, n_neg=90)


def entry(
    submission_id: int,
    team: str,
    method: str,
    country: Country,
    aucs: dict[Task, float | None] | float,
    *,
    team_id: int | None = None,
    minutes: int = 0,
    baseline: bool = False,
) -> Entry:
    per_task = aucs if isinstance(aucs, dict) else dict.fromkeys(TASKS, aucs)
    return Entry(
        submission_id=submission_id,
        team_id=team_id if team_id is not None else abs(hash(team)) % 10_000,
        team=team,
        method=method,
        country=country,
        is_baseline=baseline,
        submitted_at=T0 + timedelta(minutes=minutes),
        scorer_version="1",
        results={t: result(a) for t, a in per_task.items()},
    )


class TagCollector(HTMLParser):
    """The tags and text of a page, to check what a browser would parse out of it."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(html: str) -> TagCollector:
    collector = TagCollector()
    collector.feed(html)
    return collector
