"""`leaderboard baselines …`: train the reference models and enter them on the leaderboard.
Torch and the models are imported inside the commands, so the rest of the CLI starts fast."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer

baselines_app = typer.Typer(
    help="Train the reference models and enter them on the leaderboard.", no_args_is_help=True
)


@baselines_app.command("train")
def train_command(
    data: Annotated[
        Path,
        typer.Option(
            help="Data root: AliExpress_CC/{train,test}.csv (prepared once into "
            "DATA/prepared/CC/{train,test}) or prepared folders there."
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            help="Run folder; with several models or countries, the parent of "
            "one run folder per CC_model."
        ),
    ],
    model: Annotated[
        list[str] | None,
        typer.Option(help="dnn, mmoe, ple, esmm, aitm, sharedbottom or omoe (repeatable)."),
    ] = None,
    all_models: Annotated[
        bool, typer.Option("--all", help="The challenge's five: dnn, mmoe, ple, esmm, aitm.")
    ] = False,
    country: Annotated[
        list[str] | None,
        typer.Option(help="NL, ES, FR or US (repeatable); default: every country under DATA."),
    ] = None,
    preset: Annotated[
        str, typer.Option(help="spec: SPEC's reference sizes; demo: narrow, for 2-core demos.")
    ] = "spec",
    embed_dim: Annotated[int | None, typer.Option(help="Override the embedding size.")] = None,
    max_epochs: Annotated[int | None, typer.Option(min=1)] = None,
    batch_size: Annotated[int | None, typer.Option(min=2)] = None,
    patience: Annotated[int | None, typer.Option(min=1)] = None,
    val_fraction: Annotated[float | None, typer.Option(min=0.01, max=0.9)] = None,
    aitm_calibration: Annotated[
        float | None, typer.Option(help="AITM label-constraint weight; 0 switches it off.")
    ] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    device: Annotated[str, typer.Option(help="auto (GPU when present), cpu, cuda, cuda:1…")] = (
        "auto"
    ),
    threads: Annotated[
        int | None, typer.Option(help="CPU threads (default: every core).", min=1)
    ] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Train baselines; each run folder gets config, per-epoch metrics, model.pt and predictions."""
    from baselines.config import CHALLENGE_MODELS, ModelName, parse_model, preset_config
    from baselines.data import DataNotFound, available_countries, load_country
    from baselines.train import train
    from evaluator.data.errors import DataFormatError
    from evaluator.schema import Country, parse_country

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        models: list[ModelName] = [parse_model(m) for m in model or []]
        countries: list[Country] = [parse_country(c) for c in country or []]
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    if all_models:
        models += [m for m in CHALLENGE_MODELS if m not in models]
    if not models:
        raise typer.BadParameter("name a model with --model, or --all")
    if preset not in ("spec", "demo"):
        raise typer.BadParameter(f"--preset must be spec or demo, not {preset!r}")
    if not countries:
        countries = available_countries(data)
        if not countries:
            typer.echo(f"error: no country data under {data}", err=True)
            raise typer.Exit(2)
    single = len(models) == 1 and len(countries) == 1

    failures = 0
    for cc in countries:
        try:
            country_data = load_country(data, cc, progress=not quiet)
        except (DataNotFound, DataFormatError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
        for name in models:
            cfg = preset_config("demo" if preset == "demo" else "spec", name, cc)
            arch = cfg.arch if embed_dim is None else replace(cfg.arch, embed_dim=embed_dim)
            overrides: dict[str, Any] = {
                "max_epochs": max_epochs,
                "batch_size": batch_size,
                "patience": patience,
                "val_fraction": val_fraction,
                "aitm_calibration": aitm_calibration,
                "seed": seed,
            }
            cfg = replace(
                cfg,
                arch=arch,
                device=device,
                **{k: v for k, v in overrides.items() if v is not None},
            )
            run = out if single else out / f"{cc}_{name}"
            try:
                summary = train(cfg, country_data, run, progress=not quiet, threads=threads)
            except (ValueError, RuntimeError) as exc:
                failures += 1
                typer.echo(f"error: {name} {cc}: {exc}", err=True)
                continue
            aucs = "  ".join(
                f"{task} {'n/a' if auc is None else f'{auc:.4f}'}"
                for task, auc in summary.test_auc.items()
            )
            typer.echo(
                f"{run}: {name} {cc} best epoch {summary.best_epoch}/{summary.epochs_run}, "
                f"test AUC {aucs}, {summary.samples_per_s:,.0f} samples/s on {summary.device}"
            )
    if failures:
        raise typer.Exit(1)


@baselines_app.command("register")
def register_command(
    runs: Annotated[list[Path], typer.Argument(help="Run folders, or folders of run folders.")],
    server: Annotated[str, typer.Option(help="The service's base URL.")],
    token: Annotated[str, typer.Option(envvar="LB_TOKEN", help="API token of a baseline team.")],
    method: Annotated[
        str | None, typer.Option(help="Method name (default: the model's name).")
    ] = None,
    verify_token: Annotated[
        str | None,
        typer.Option(
            envvar="LB_ORGANISER_TOKEN",
            help="An organiser's token: once scored, ask the service to verify each entry's "
            "checkpoint against its file.",
        ),
    ] = None,
    wait: Annotated[
        bool, typer.Option(help="Wait until each entry is scored (always when verifying).")
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each entry.")] = 1800.0,
) -> None:
    """Enter trained runs (predictions + checkpoint) through the HTTP API as baselines."""
    import httpx

    from baselines.register import (
        RegistrationError,
        find_runs,
        register_run,
        request_verification,
        wait_until_scored,
    )

    try:
        folders = find_runs(runs)
    except (RegistrationError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    failures = 0
    with httpx.Client(base_url=server, timeout=httpx.Timeout(30.0, write=600.0)) as client:
        for run in folders:
            try:
                entry = register_run(run, client, token, method)
                if wait or verify_token:
                    entry = wait_until_scored(entry, client, token, timeout_s=timeout)
                if verify_token and entry.state == "scored":
                    entry = request_verification(entry, client, verify_token)
            except (RegistrationError, httpx.HTTPError) as exc:
                failures += 1
                typer.echo(f"error: {exc}", err=True)
                continue
            line = (
                f"{run}: {entry.method} {entry.country} ({entry.outputs}) → submission "
                f"{entry.submission_id}, {entry.state}"
            )
            if entry.reason:
                line += f" ({entry.reason})"
            if entry.verification is not None:
                line += f", verification {entry.verification.get('id')} requested"
            typer.echo(line)
            if entry.state == "failed":
                failures += 1
    if failures:
        raise typer.Exit(1)
