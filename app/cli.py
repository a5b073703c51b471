"""The one entry point, `leaderboard`. Sub-command groups live beside the code they drive."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer

from app.organiser.cli import add_admin_commands
from baselines.cli import baselines_app
from baselines.config import CHALLENGE_MODELS
from evaluator.cli import data_app, score

cli = typer.Typer(help="MTME challenge leaderboard: data, scoring, service, baselines.",
                  no_args_is_help=True)
cli.add_typer(data_app, name="data")
cli.command("score")(score)
cli.add_typer(baselines_app, name="baselines")

db_app = typer.Typer(help="Database schema (Alembic).", no_args_is_help=True)
admin_app = typer.Typer(help="Organisers' commands (run where LB_DATABASE_URL reaches the DB).",
                        no_args_is_help=True)
cli.add_typer(db_app, name="db")
cli.add_typer(admin_app, name="admin")

SERVER_OPTION = typer.Option(..., "--server", envvar="LB_SERVER", help="e.g. https://host")
TOKEN_OPTION = typer.Option(..., "--token", envvar="LB_TOKEN", help="the team's API token")


def _settings() -> Any:
    from pydantic import ValidationError

    from app.config import Settings

    try:
        return Settings()
    except ValidationError as exc:
        typer.echo(f"error: bad LB_ settings: {exc}", err=True)
        raise typer.Exit(2) from exc


def _exit_on_sigterm() -> None:
    """Make SIGTERM unwind like Ctrl-C, so `finally` blocks stop child processes.

    Python's default SIGTERM kills without unwinding, and uvicorn re-raises the signal it caught
    once it has shut down: without this, `serve` died there and orphaned its queue consumer."""

    def terminate(_signum: int, _frame: object) -> None:
        raise SystemExit(128 + signal.SIGTERM)

    signal.signal(signal.SIGTERM, terminate)


def _die_with_parent() -> None:
    """Runs in the consumer child before exec: the kernel sends it SIGTERM if `serve` dies, even
    by SIGKILL, so no consumer outlives its API process."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _logging() -> None:
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


# ----------------------------------------------------------------------------------- service


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head", help="target revision")) -> None:
    """Bring the database schema up to date (`alembic upgrade head`)."""
    from app.migrate import upgrade

    settings = _settings()
    upgrade(settings, revision)
    typer.echo(f"database at {revision}: {settings.db_url.split('@')[-1]}")


@cli.command()
def serve(
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port"),
    consumer: bool = typer.Option(True, "--consumer/--no-consumer",
                                  help="start a queue consumer process beside the API"),
) -> None:
    """The API and the leaderboard page (uvicorn), with a queue consumer unless told not to."""
    import uvicorn

    from app.main import create_app
    from app.migrate import upgrade

    _logging()
    settings = _settings()
    if settings.auto_migrate:
        upgrade(settings)
    from app.storage import ArtifactStore

    ArtifactStore.of(settings).sweep_tmp()
    worker_process: subprocess.Popen[bytes] | None = None
    _exit_on_sigterm()
    if consumer:
        # A separate process: the API never imports torch or shares a crash with the worker.
        env = {**os.environ, "LB_AUTO_MIGRATE": "false"}
        worker_process = subprocess.Popen(
            [sys.executable, "-m", "app", "worker"], env=env,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None)
    try:
        uvicorn.run(create_app(settings), host=host, port=port, proxy_headers=True,
                    forwarded_allow_ips=os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1"))
    finally:
        if worker_process is not None:
            from app.processes import stop_gracefully

            stop_gracefully(worker_process)


@cli.command()
def worker(workers: int = typer.Option(0, "--workers", help="threads; 0: LB_CONSUMER_WORKERS")
           ) -> None:
    """A queue consumer: scores submissions, runs verifications, reaps expired leases."""
    from app import queue
    from app.migrate import upgrade

    _logging()
    settings = _settings()
    if settings.auto_migrate:
        upgrade(settings)
    configured = queue.configure(settings)
    queue.make_consumer(configured, workers=workers or None).run()


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
    from app.demo import DemoError, DemoPlan, run_demo
    from baselines.config import parse_model
    from evaluator.schema import parse_country

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

    _exit_on_sigterm()
    try:
        run_demo(plan, say)
    except DemoError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc


# ------------------------------------------------------------------------------------ admin


@contextmanager
def _session() -> Iterator[Any]:
    from app.db import make_engine, session_factory
    from app.errors import AppError

    engine = make_engine(_settings())
    try:
        with session_factory(engine)() as session:
            try:
                yield session
                session.commit()
            except AppError as exc:
                session.rollback()
                typer.echo(f"error: {exc.detail}", err=True)
                raise typer.Exit(1) from exc
    finally:
        engine.dispose()


@admin_app.command("create-team")
def create_team(name: str = typer.Argument(...),
                organiser: bool = typer.Option(False, "--organiser"),
                baseline: bool = typer.Option(False, "--baseline")) -> None:
    """Create a team and print its API token (shown this once only)."""
    from app.teams.service import create_team as create

    with _session() as session:
        team, issued = create(session, None, name, organiser=organiser, baseline=baseline)
        session.flush()
        team_id = team.id
    typer.echo(f"team {team_id} {name!r} created; its token (store it now, it is not kept):",
               err=True)
    print(issued.secret)


def _team_id(session: Any, team: str) -> int:
    from app.teams.repository import by_name

    found = by_name(session, team)
    if found is None:
        typer.echo(f"error: no team named {team!r}", err=True)
        raise typer.Exit(1)
    return int(found.id)


@admin_app.command("create-token")
def create_token(team: str = typer.Argument(..., help="team name")) -> None:
    """Issue another token for a team (printed once)."""
    from app.teams.service import create_token as create

    with _session() as session:
        issued = create(session, None, _team_id(session, team))
    typer.echo(f"token {issued.token.id} for {team!r} (store it now):", err=True)
    print(issued.secret)


@admin_app.command("revoke-token")
def revoke_token(token_id: int = typer.Argument(..., help="token id (see list-tokens)")) -> None:
    """Revoke a token at once."""
    from app.teams.service import revoke_token as revoke

    with _session() as session:
        token = revoke(session, None, token_id)
        print(f"token {token.id} (prefix {token.prefix}) revoked at {token.revoked_at}")


@admin_app.command("list-teams")
def list_teams() -> None:
    """Every team with its tokens (prefixes only), one JSON object a line."""
    from app.teams import repository, service

    with _session() as session:
        for team in repository.all_teams(session):
            tokens = [service.token_out(t).model_dump(mode="json")
                      for t in repository.tokens_of(session, team.id)]
            print(json.dumps({**service.team_out(team).model_dump(mode="json"),
                              "tokens": tokens}))


@admin_app.command("verify")
def verify(submission_id: int = typer.Argument(...),
           tolerance: float | None = typer.Option(None, "--tolerance", min=0.0, max=1.0),
           enqueue: bool = typer.Option(False, "--enqueue",
                                        help="hand it to the queue instead of running here")
           ) -> None:
    """Run a submission's checkpoint and compare its AUCs with its file's (prints JSON)."""
    from app import queue
    from app.models import Verification
    from app.submissions.service import request_verification, verification_out
    from app.worker import WorkerContext
    from app.worker import verify as run_verification

    settings = _settings()
    with _session() as session:
        organiser = _any_organiser(session)
        ver_id = request_verification(session, settings, organiser, submission_id,
                                      tolerance).id
    if enqueue:
        queue.configure(settings)
        queue.enqueue_verification(ver_id)
        print(json.dumps({"verification_id": ver_id, "state": "queued"}))
        return
    ctx = WorkerContext.create(settings)
    try:
        run_verification(ctx, ver_id)
        with ctx.factory() as session:
            ver = session.get(Verification, ver_id)
            assert ver is not None
            print(json.dumps(verification_out(ver).model_dump(mode="json"), indent=2))
            ok = bool(ver.verified)
    finally:
        ctx.engine.dispose()
    raise typer.Exit(0 if ok else 1)


def _any_organiser(session: Any) -> Any:
    from sqlalchemy import select

    from app.models import Team

    team = session.execute(select(Team).where(Team.is_organiser.is_(True))
                           .order_by(Team.id).limit(1)).scalar_one_or_none()
    if team is None:
        typer.echo("error: create an organiser team first (admin create-team --organiser)",
                   err=True)
        raise typer.Exit(1)
    return team


add_admin_commands(admin_app)


# ------------------------------------------------------------------------------ participants


@cli.command()
def submit(
    file: Path | None = typer.Argument(None, exists=True, dir_okay=False,
                                       help="prediction file (CSV, gzip CSV, Parquet)"),
    server: str = SERVER_OPTION,
    token: str = TOKEN_OPTION,
    country: str = typer.Option(..., "--country"),
    method: str = typer.Option(..., "--method"),
    checkpoint: Path | None = typer.Option(None, "--checkpoint", exists=True, dir_okay=False,
                                           help="TorchScript archive"),
    outputs: str | None = typer.Option(None, "--outputs",
                                       help="ctr,cvr | ctr,ctcvr | ctr,cvr,ctcvr"),
    quiet: bool = typer.Option(False, "--quiet", help="no progress bar"),
) -> None:
    """Upload a prediction file and/or a checkpoint; prints the submission id."""
    import httpx
    from tqdm import tqdm

    from app.client import ClientError
    from app.client import submit as upload

    if file is None and checkpoint is None:
        typer.echo("error: give a prediction FILE, --checkpoint, or both", err=True)
        raise typer.Exit(2)
    total = sum(p.stat().st_size for p in (file, checkpoint) if p is not None)
    # One key per invocation: a retried request cannot create a second submission.
    key = uuid.uuid4().hex
    with tqdm(total=total, unit="B", unit_scale=True, desc="upload", disable=quiet,
              file=sys.stderr) as bar:
        def advance(n: int) -> None:
            bar.update(n)

        try:
            result = upload(server, token, country, method, file, checkpoint, outputs,
                            idempotency_key=key, on_progress=advance)
        except ClientError as exc:
            bar.close()
            typer.echo(f"error: HTTP {exc.status}: {json.dumps(exc.body, indent=2)}", err=True)
            raise typer.Exit(1) from exc
        except httpx.HTTPError as exc:
            bar.close()
            typer.echo(f"error: {server}: {type(exc).__name__}: {exc}", err=True)
            raise typer.Exit(1) from exc
    typer.echo(f"submission {result['id']} {result['state']}", err=True)
    print(result["id"])


@cli.command()
def status(
    submission_id: int | None = typer.Argument(None),
    server: str = SERVER_OPTION,
    token: str = TOKEN_OPTION,
) -> None:
    """One's submissions and their states, or one submission with its scores (JSON)."""
    import httpx

    from app.client import ClientError
    from app.client import status as fetch

    try:
        result = fetch(server, token, submission_id)
    except ClientError as exc:
        typer.echo(f"error: HTTP {exc.status}: {json.dumps(exc.body)}", err=True)
        raise typer.Exit(1) from exc
    except httpx.HTTPError as exc:
        typer.echo(f"error: {server}: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(1) from exc
    if submission_id is not None:
        print(json.dumps(result, indent=2))
        return
    for sub in result:
        print(f"{sub['id']:>6}  {sub['country']}  {sub['state']:<8}  {sub['method']}"
              + (f"  ({sub['reason']})" if sub.get("reason") else ""))


def main() -> None:
    cli()
