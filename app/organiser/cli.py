"""Organiser commands under `leaderboard admin`: hide, disqualify, rescore, reveal, audit.

They talk to the database directly (the organiser runs them on the server machine, with the
same LB_ settings as the service) and write the same audit rows as the API and the page. The
actor recorded is the organiser team given with `--as`, or "server CLI" when none is given.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import typer
from sqlalchemy import select
from sqlalchemy.orm import Session

T = TypeVar("T")

MAX_ID = 2**31 - 1
AS_OPTION = typer.Option(None, "--as", help="organiser team recorded as the actor")
REASON_OPTION = typer.Option(None, "--reason", help="why (kept in the audit log)")


@contextmanager
def _session() -> Iterator[Session]:
    from app.config import Settings
    from app.db import make_engine, session_factory

    engine = make_engine(Settings())
    try:
        # Results are printed after the commit: keep their attributes loaded.
        with session_factory(engine)() as session:
            yield session
    finally:
        engine.dispose()


def _actor(session: Session, name: str | None) -> Any:
    from app.models import Team

    if name is None:
        return None
    team = session.execute(select(Team).where(Team.name == name)).scalar_one_or_none()
    if team is None or not team.is_organiser:
        typer.echo(f"error: {name!r} is not an organiser team", err=True)
        raise typer.Exit(1)
    return team


def _run(actor: str | None, work: Callable[[Session, Any], T]) -> T:
    from . import service

    with _session() as session:
        try:
            result = work(session, _actor(session, actor))
        except service.OrganiserError as exc:
            session.rollback()
            typer.echo(f"error: {exc.detail}", err=True)
            raise typer.Exit(1) from exc
        session.commit()
        return result


def add_admin_commands(admin_app: typer.Typer) -> None:
    """Add the organiser commands to the `admin` group of the `leaderboard` entry point."""
    from . import service

    def flag(name: str, helptext: str, apply: Callable[[Session, Any, int, str | None], Any],
             ) -> None:
        def command(
            submission_id: int = typer.Argument(..., help="submission id", min=1,
                                                max=MAX_ID),
            reason: str | None = REASON_OPTION,
            actor: str | None = AS_OPTION,
        ) -> None:
            sub = _run(actor, lambda s, a: apply(s, a, submission_id, reason))
            typer.echo(f"submission {sub.id}: hidden={bool(sub.hidden)} "
                       f"disqualified={bool(sub.disqualified)}")

        command.__doc__ = helptext
        admin_app.command(name)(command)

    flag("hide", "Hide a submission from the leaderboard.",
         lambda s, a, i, r: service.set_hidden(s, a, i, True, r))
    flag("unhide", "Show a hidden submission again.",
         lambda s, a, i, r: service.set_hidden(s, a, i, False, r))
    flag("disqualify", "Disqualify a submission (--reason required).",
         lambda s, a, i, r: service.set_disqualified(s, a, i, True, r))
    flag("requalify", "Undo a disqualification.",
         lambda s, a, i, r: service.set_disqualified(s, a, i, False, r))

    @admin_app.command("rescore")
    def rescore(
        submission_ids: list[int] | None = typer.Argument(
            None, help="ids to score again; every scored submission when none is given",
            min=1, max=MAX_ID),
        actor: str | None = AS_OPTION,
    ) -> None:
        """Score submissions again under the installed scorer version (old scores are kept)."""
        plan = _run(actor, lambda s, a: service.plan_rescore(s, a, submission_ids or None))
        service.enqueue_all(plan)
        typer.echo(f"{len(plan.submission_ids)} submissions queued for scorer version "
                   f"{plan.scorer_version}")

    @admin_app.command("reveal")
    def reveal(
        undo: bool = typer.Option(False, "--undo", help="show the public split again"),
        actor: str | None = AS_OPTION,
    ) -> None:
        """Reveal the private split: the leaderboard ranks on it from now on."""
        revealed = _run(actor, lambda s, a: bool(service.set_revealed(s, a, not undo).revealed))
        typer.echo("the private split is revealed" if revealed
                   else "the leaderboard shows the public split")

    @admin_app.command("audit")
    def audit(limit: int = typer.Option(50, "--limit", min=1, max=10_000)) -> None:
        """Print the audit log, newest first, one JSON object a line."""
        with _session() as session:
            for entry in service.audit_entries(session, limit):
                typer.echo(json.dumps(entry, ensure_ascii=False))
