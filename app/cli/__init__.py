"""The one entry point, `leaderboard`: the service, participants' and organisers' commands,
data preparation, scoring and the baselines."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from baselines.cli import baselines_app
from baselines.config import CHALLENGE_MODELS
from evaluator.cli import data_app, score

from .admin import admin_app
from .participant import select, status, submit, unselect
from .service import db_app, exit_on_sigterm, serve, worker

cli = typer.Typer(help="MTME challenge leaderboard: data, scoring, service, baselines.",
                  no_args_is_help=True)
cli.add_typer(data_app, name="data")
cli.command("score")(score)
cli.add_typer(baselines_app, name="baselines")
cli.add_typer(db_app, name="db")
cli.add_typer(admin_app, name="admin")
cli.command()(serve)
cli.command()(worker)
cli.command()(submit)
cli.command()(status)
cli.command()(select)
cli.command()(unselect)


@cli.command()
def demo(
    folder: Path = typer.Option(Path("demo"), "--dir", help="the demo's own folder"),
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port"),
    countries: str = typer.Option("NL,ES,FR,US", "--countries", help="comma-separated codes"),
    train_rows: int = typer.Option(100_000, "--train-rows", min=1000),
    test_rows: int = typer.Option(100_000, "--test-rows", min=1000),
    baselines: str = typer.Option(",".join(CHALLENGE_MODELS), "--baselines",
                                  help="models to train and enter; empty for none"),
    threads: int = typer.Option(max(1, (os.cpu_count() or 2) - 1), "--threads", min=1,
                                help="training threads (leave a core to the service)"),
    seed: int = typer.Option(0, "--seed", min=0),
    fresh: bool = typer.Option(False, "--fresh", help="delete the earlier demo and start over"),
) -> None:
    """The service with demo data on SQLite: synthetic countries, sample teams, baselines."""
    from baselines.config import parse_model
    from evaluator.schema import parse_country

    from .demo import DemoError, DemoPlan, run_demo

    try:
        plan = DemoPlan(
            folder=folder, host=host, port=port,
            countries=tuple(parse_country(c) for c in countries.split(",") if c.strip()),
            train_rows=train_rows, test_rows=test_rows, seed=seed,
            baselines=tuple(str(parse_model(m)) for m in baselines.split(",") if m.strip()),
            threads=threads, fresh=fresh)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    if not plan.countries:
        raise typer.BadParameter("--countries is empty")

    def say(line: str) -> None:
        typer.echo(line, err=True)

    exit_on_sigterm()
    try:
        run_demo(plan, say)
    except DemoError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc


def main() -> None:
    cli()
