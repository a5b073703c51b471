"""The CLI's one way to reach the database: settings from the environment, a session whose
transaction commits when the command succeeds, and the organiser a command acts as."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from pydantic import ValidationError
from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from app.config import Settings
from app.db import make_engine, session_factory
from app.errors import AppError
from app.models import Team

AS_OPTION = typer.Option(
    None, "--as", envvar="LB_AS",
    help="the organiser team doing this, recorded as the audit actor (env LB_AS)")


def fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        raise fail(f"bad LB_ settings: {exc}", 2) from exc


@contextmanager
def db_session(config: Settings | None = None) -> Iterator[Session]:
    """One transaction: committed when the block ends normally; an AppError rolls it back and
    ends the command with its message. Results stay loaded after the commit, for printing."""
    engine = make_engine(config or settings())
    try:
        with session_factory(engine)() as session:
            try:
                yield session
                session.commit()
            except AppError as exc:
                session.rollback()
                raise fail(str(exc.detail)) from exc
    finally:
        engine.dispose()


def organiser(session: Session, name: str | None) -> Team | None:
    """The organiser team named with `--as`. It may be left out only while the database has no
    organiser at all (creating the first one); otherwise every action names its actor."""
    if name is None:
        if session.execute(select(exists().where(Team.is_organiser.is_(True)))).scalar():
            raise fail("say which organiser team you are: --as NAME (or LB_AS)", 2)
        return None
    team = session.execute(select(Team).where(Team.name == name)).scalar_one_or_none()
    if team is None or not team.is_organiser:
        raise fail(f"{name!r} is not an organiser team")
    return team
