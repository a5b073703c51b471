"""Participants' commands: `submit` and `status`, through the service's HTTP client."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import typer

from .client import ClientError, connect, describe_error

SERVER_OPTION = typer.Option(..., "--server", envvar="LB_SERVER", help="e.g. https://host")
TOKEN_OPTION = typer.Option(..., "--token", envvar="LB_TOKEN", help="the team's API token")


CHECKPOINT_HELP = (
    "TorchScript archive (torch.jit.save). Models of the multi-task library the baselines come "
    "from return (pCTR, pCTCVR): give them --outputs ctr,ctcvr, and export them with "
    "torch.jit.trace on a sample batch (torch.jit.script fails on them).")


def _refused(exc: ClientError) -> typer.Exit:
    typer.echo(f"error: HTTP {exc.status}: {describe_error(exc.body)}", err=True)
    return typer.Exit(1)


def reason_lines(reason: str | None) -> list[str]:
    """A failure reason as its problems, one a line."""
    return [line.strip().removeprefix("- ") for line in (reason or "").splitlines()
            if line.strip()]


def _unreachable(server: str, exc: httpx.HTTPError) -> typer.Exit:
    typer.echo(f"error: {server}: {type(exc).__name__}: {exc}", err=True)
    return typer.Exit(1)


def submit(
    file: Path | None = typer.Argument(None, exists=True, dir_okay=False,
                                       help="prediction file (CSV, gzip CSV, Parquet)"),
    server: str = SERVER_OPTION,
    token: str = TOKEN_OPTION,
    country: str = typer.Option(..., "--country"),
    method: str = typer.Option(..., "--method"),
    checkpoint: Path | None = typer.Option(None, "--checkpoint", exists=True, dir_okay=False,
                                           help=CHECKPOINT_HELP),
    outputs: str | None = typer.Option(
        None, "--outputs", help="the checkpoint's outputs in order: ctr,cvr (default) | "
                                "ctr,ctcvr (multi-task library models) | ctr,cvr,ctcvr"),
    quiet: bool = typer.Option(False, "--quiet", help="no progress bar"),
) -> None:
    """Upload a prediction file and/or a checkpoint; prints the submission id.

    Checkpoints: models of the multi-task library the baselines come from return (pCTR,
    pCTCVR); declare them with --outputs ctr,ctcvr and export them with torch.jit.trace."""
    from tqdm import tqdm

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
            with connect(server, token) as client:
                result = client.submit(country, method, file, checkpoint, outputs,
                                       idempotency_key=key, on_progress=advance)
        except ClientError as exc:
            bar.close()
            raise _refused(exc) from exc
        except httpx.HTTPError as exc:
            bar.close()
            raise _unreachable(server, exc) from exc
    typer.echo(f"submission {result['id']} {result['state']}", err=True)
    print(result["id"])


def status(
    submission_id: int | None = typer.Argument(None),
    server: str = SERVER_OPTION,
    token: str = TOKEN_OPTION,
) -> None:
    """One's submissions and their states, or one submission with its scores (JSON)."""
    try:
        with connect(server, token) as client:
            result: Any = client.status(submission_id)
    except ClientError as exc:
        raise _refused(exc) from exc
    except httpx.HTTPError as exc:
        raise _unreachable(server, exc) from exc
    if submission_id is not None:
        print(json.dumps(result, indent=2))
        return
    for sub in result:
        marks = [f"selected ({sub['selection']})" if sub.get("selection") else "",
                 "withdrawn" if sub.get("withdrawn") else "",
                 "post-challenge" if sub.get("post_challenge") else ""]
        flags = "  ".join(m for m in marks if m)
        print(f"{sub['id']:>6}  {sub['country']}  {sub['state']:<8}  {sub['method']}"
              + (f"  [{flags}]" if flags else "")
              + (f"  {sub['feedback']}" if sub.get("feedback") else ""))
        for line in reason_lines(sub.get("reason")):
            print(f"{'':>8}- {line}")
        if sub.get("output_warning"):
            print(f"{'':>8}! {sub['output_warning']}")


def _selection(submission_id: int, server: str, token: str, selected: bool) -> None:
    try:
        with connect(server, token) as client:
            result = client.select(submission_id, selected)
    except ClientError as exc:
        raise _refused(exc) from exc
    except httpx.HTTPError as exc:
        raise _unreachable(server, exc) from exc
    chosen = ", ".join(map(str, result["selected_in_country"])) or "none"
    state = "selected" if result["selected"] else "not selected"
    typer.echo(f"submission {submission_id} {state}; selected in {result['country']}: "
               f"{chosen} (at most {result['limit']})")


def select(submission_id: int = typer.Argument(..., min=1),
           server: str = SERVER_OPTION, token: str = TOKEN_OPTION) -> None:
    """Count a scored submission for the final ranking (up to the selection limit a
    country)."""
    _selection(submission_id, server, token, True)


def unselect(submission_id: int = typer.Argument(..., min=1),
             server: str = SERVER_OPTION, token: str = TOKEN_OPTION) -> None:
    """Stop counting a submission for the final ranking."""
    _selection(submission_id, server, token, False)
