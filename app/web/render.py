"""The one Jinja environment of the service's pages (autoescaped: every name on a page comes
from a participant)."""

from __future__ import annotations

from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from evaluator.schema import COUNTRIES


def problem_lines(reason: str | None) -> list[str]:
    """A failure reason as its list of problems, one a line (the "- " bullets dropped)."""
    return [line.strip().removeprefix("- ") for line in (reason or "").splitlines()
            if line.strip()]


@cache
def environment() -> Environment:
    # Autoescape templates rendered from strings too.
    env = Environment(
        loader=PackageLoader("app.web", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(countries=COUNTRIES)
    env.filters["problems"] = problem_lines
    return env


def add_globals(**values: Any) -> None:
    """Names a domain's templates and macros use (macros see globals, not the caller's
    context)."""
    environment().globals.update(values)


def render(template: str, **context: Any) -> str:
    context.setdefault("query", "")
    context.setdefault("nav", "")
    return environment().get_template(template).render(**context)
