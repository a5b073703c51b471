"""Organisers' commands under `leaderboard admin`: teams and tokens, verify, hide, disqualify,
rescore, reveal, audit.

They talk to the database directly (the organiser runs them where LB_DATABASE_URL reaches it)
and write the same audit rows as the API and the page. Every command that changes something
names its actor with `--as`; only the first organiser team can be created without one.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from sqlalchemy.orm import Session

from app.deps import MAX_ID
from app.models import Team

from .session import AS_OPTION, db_session, fail, organiser, settings

admin_app = typer.Typer(help="Organisers' commands (run where LB_DATABASE_URL reaches the DB).",
                        no_args_is_help=True)
REASON_OPTION = typer.Option(None, "--reason", help="why (kept in the audit log)")


@admin_app.command("create-team")
def create_team(name: str = typer.Argument(...),
                is_organiser: bool = typer.Option(False, "--organiser"),
                baseline: bool = typer.Option(False, "--baseline"),
                actor: str | None = AS_OPTION) -> None:
    """Create a team and print its API token (shown this once only)."""
    from app.teams.service import create_team as create

    with db_session() as session:
        team, issued = create(session, organiser(session, actor), name,
                              organiser=is_organiser, baseline=baseline)
        team_id = team.id
    typer.echo(f"team {team_id} {name!r} created; its token (store it now, it is not kept):",
               err=True)
    print(issued.secret)


def _team_id(session: Session, team: str) -> int:
    from app.teams.repository import by_name

    found = by_name(session, team)
    if found is None:
        raise fail(f"no team named {team!r}")
    return int(found.id)


@admin_app.command("create-token")
def create_token(team: str = typer.Argument(..., help="team name"),
                 actor: str | None = AS_OPTION) -> None:
    """Issue another token for a team (printed once)."""
    from app.teams.service import create_token as create

    with db_session() as session:
        issued = create(session, organiser(session, actor), _team_id(session, team))
    typer.echo(f"token {issued.token.id} for {team!r} (store it now):", err=True)
    print(issued.secret)


@admin_app.command("revoke-token")
def revoke_token(token_id: int = typer.Argument(..., help="token id (see list-teams)"),
                 actor: str | None = AS_OPTION) -> None:
    """Revoke a token at once."""
    from app.teams.service import revoke_token as revoke

    with db_session() as session:
        token = revoke(session, organiser(session, actor), token_id)
        print(f"token {token.id} (prefix {token.prefix}) revoked at {token.revoked_at}")


@admin_app.command("list-teams")
def list_teams() -> None:
    """Every team with its tokens (prefixes only), one JSON object a line."""
    from app.teams import repository, service

    with db_session() as session:
        tokens = repository.tokens_by_team(session)
        for team in repository.all_teams(session):
            print(json.dumps({**service.team_out(team).model_dump(mode="json"),
                              "tokens": [service.token_out(t).model_dump(mode="json")
                                         for t in tokens.get(team.id, [])]}))


@admin_app.command("verify")
def verify(submission_id: int = typer.Argument(..., min=1, max=MAX_ID),
           tolerance: float | None = typer.Option(None, "--tolerance", min=0.0, max=1.0),
           enqueue: bool = typer.Option(False, "--enqueue",
                                        help="hand it to the queue instead of running here"),
           actor: str | None = AS_OPTION) -> None:
    """Run a submission's checkpoint and compare it with its file, on every split (prints
    JSON; exits 1 when not verified)."""
    from app.jobs.context import enqueue_or_leave_to_reaper
    from app.jobs.queue import Queue
    from app.jobs.verification import verify as run_verification
    from app.models import Verification
    from app.submissions.service import request_verification, verification_out

    config = settings()
    with db_session(config) as session:
        who = organiser(session, actor)
        if who is None:
            raise fail("create an organiser team first (admin create-team --organiser)")
        ver_id = request_verification(session, config, who, submission_id, tolerance).id
    queue = Queue(config)
    try:
        if enqueue:
            # Committed already: with the queue down, the reaper enqueues it later.
            enqueue_or_leave_to_reaper(queue.enqueue, "verify", ver_id)
            print(json.dumps({"verification_id": ver_id, "state": "queued"}))
            return
        context = queue.context()
        run_verification(context, ver_id)
        with context.factory() as session:
            ver = session.get(Verification, ver_id)
            assert ver is not None
            print(json.dumps(verification_out(ver).model_dump(mode="json"), indent=2))
            ok = bool(ver.verified)
    finally:
        queue.close()
    raise typer.Exit(0 if ok else 1)


def _flag_command(name: str, helptext: str,
                  apply: Callable[[Session, Team | None, int, str | None], Any]) -> None:
    def command(
        submission_id: int = typer.Argument(..., help="submission id", min=1, max=MAX_ID),
        reason: str | None = REASON_OPTION,
        actor: str | None = AS_OPTION,
    ) -> None:
        with db_session() as session:
            sub = apply(session, organiser(session, actor), submission_id, reason)
        typer.echo(f"submission {sub.id}: hidden={bool(sub.hidden)} "
                   f"disqualified={bool(sub.disqualified)}")

    command.__doc__ = helptext
    admin_app.command(name)(command)


def _add_flag_commands() -> None:
    from app.organiser import service

    _flag_command("hide", "Hide a submission from the leaderboard.",
                  lambda s, a, i, r: service.set_hidden(s, a, i, True, r))
    _flag_command("unhide", "Show a hidden submission again.",
                  lambda s, a, i, r: service.set_hidden(s, a, i, False, r))
    _flag_command("disqualify", "Disqualify a submission (--reason required).",
                  lambda s, a, i, r: service.set_disqualified(s, a, i, True, r))
    _flag_command("requalify", "Undo a disqualification.",
                  lambda s, a, i, r: service.set_disqualified(s, a, i, False, r))


_add_flag_commands()


@admin_app.command("rescore")
def rescore(
    submission_ids: list[int] | None = typer.Argument(
        None, help="ids to score again; every scored submission when none is given",
        min=1, max=MAX_ID),
    actor: str | None = AS_OPTION,
) -> None:
    """Score submissions again under the installed scorer version (old scores are kept)."""
    from app.jobs.queue import Queue
    from app.organiser import service

    config = settings()
    with db_session(config) as session:
        plan = service.plan_rescore(session, organiser(session, actor), submission_ids or None)
    # Recorded before this: a failed enqueue is picked up by the reaper.
    queue = Queue(config)
    try:
        service.enqueue_all(plan, queue.enqueue)
    finally:
        queue.close()
    typer.echo(f"{len(plan.submission_ids)} submissions queued for scorer version "
               f"{plan.scorer_version}")


@admin_app.command("reveal")
def reveal(
    undo: bool = typer.Option(False, "--undo", help="show the public split again"),
    actor: str | None = AS_OPTION,
) -> None:
    """Reveal the private split: the leaderboard ranks on it from now on."""
    from app import challenge

    with db_session() as session:
        revealed = bool(challenge.set_revealed(session, organiser(session, actor),
                                               not undo).revealed)
    typer.echo("the private split is revealed" if revealed
               else "the leaderboard shows the public split")


@admin_app.command("audit")
def audit(limit: int = typer.Option(50, "--limit", min=1, max=10_000)) -> None:
    """Print the audit log, newest first, one JSON object a line."""
    from app.organiser import service

    with db_session() as session:
        for entry in service.audit_entries(session, limit):
            typer.echo(json.dumps(entry, ensure_ascii=False))


challenge_app = typer.Typer(help="The challenge file: phases, limits, selection, feedback.",
                            no_args_is_help=True)
admin_app.add_typer(challenge_app, name="challenge")


@challenge_app.command("set")
def challenge_set(path: Path = typer.Argument(..., exists=True, dir_okay=False,
                                              help="the TOML challenge file"),
                  actor: str | None = AS_OPTION) -> None:
    """Validate a challenge file and store it: every process follows it from now on."""
    from datetime import UTC, datetime

    from app.phases import store
    from app.phases.schedule import ScheduleError

    text = path.read_text(encoding="utf-8")
    with db_session() as session:
        try:
            schedule = store.set_schedule(session, organiser(session, actor), text,
                                          f"admin challenge set {path}")
        except ScheduleError as exc:
            for where, what in exc.problems:
                typer.echo(f"error: {path}: {where}: {what}", err=True)
            raise typer.Exit(1) from exc
    body = schedule.as_json(datetime.now(UTC))
    typer.echo(f"challenge file stored: {len(schedule.phases)} phases, end "
               f"{body['end']}, feedback {schedule.feedback}", err=True)


@challenge_app.command("clear")
def challenge_clear(actor: str | None = AS_OPTION) -> None:
    """Forget the challenge file: open for ever with LB_DAILY_QUOTA, as without one."""
    from app.phases import store

    with db_session() as session:
        store.set_schedule(session, organiser(session, actor), None, "admin challenge clear")
    typer.echo("challenge file cleared", err=True)


@challenge_app.command("show")
def challenge_show(toml: bool = typer.Option(False, "--toml", help="the stored file's text")
                   ) -> None:
    """The stored schedule as JSON (phases, current phase, end, rules), or its TOML text."""
    from datetime import UTC, datetime

    from app import challenge
    from app.phases import store

    with db_session() as session:
        schedule = store.load(session)
        state = challenge.state(session)
        if toml:
            print(state.schedule_toml or "", end="")
            return
        body = schedule.as_json(datetime.now(UTC))
        body["locked_at"] = state.locked_at.isoformat() if state.locked_at else None
    print(json.dumps(body, indent=2))
