"""Entering a trained run through the service's HTTP API, exactly as a participant would:
`POST /api/v1/submissions` with the prediction file and the TorchScript checkpoint, so that the
entry can be verified. The token must belong to a baseline team
(`leaderboard admin create-team NAME --baseline`); that is what marks the entry as a baseline."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx

from app.cli.client import Client, ClientError, describe_error
from baselines.config import ModelConfig, TrainConfig
from baselines.models import DISPLAY_NAMES
from baselines.train import CHECKPOINT_FILE, CONFIG_FILE, PREDICTIONS_FILE, SUMMARY_FILE


class RegistrationError(Exception):
    """The run is incomplete or the service refused it; the message says which and why."""


@dataclass(frozen=True)
class Registration:
    run: Path
    country: str
    method: str
    outputs: str
    submission_id: str
    state: str
    reason: str | None = None
    verification: dict[str, Any] | None = None


def find_runs(paths: list[Path]) -> list[Path]:
    """Each path is a run folder, or a folder of run folders (as `train --all` writes)."""
    runs: list[Path] = []
    for path in paths:
        if (path / CONFIG_FILE).is_file():
            runs.append(path)
            continue
        children = (
            sorted(p for p in path.iterdir() if (p / CONFIG_FILE).is_file())
            if (path.is_dir())
            else []
        )
        if not children:
            raise RegistrationError(
                f"{path}: not a run folder (no {CONFIG_FILE}) nor a folder of runs"
            )
        runs.extend(children)
    return runs


def method_name(cfg: TrainConfig) -> str:
    """The model's name; runs narrower than SPEC's reference sizes say so, so that nobody
    mistakes a demo-size model for the reference one."""
    name = DISPLAY_NAMES[cfg.model]
    if cfg.arch != ModelConfig():
        name += f" (small: embed {cfg.arch.embed_dim})"
    if cfg.model == "aitm" and cfg.aitm_calibration == 0:
        name += " (no calibration loss)"
    return name


def register_run(
    run: Path,
    client: httpx.Client,
    token: str,
    method: str | None = None,
) -> Registration:
    """Submit one run; `client` carries the server's base URL (any httpx.Client, including
    FastAPI's TestClient)."""
    config_path = run / CONFIG_FILE
    summary_path = run / SUMMARY_FILE
    for required in (config_path, summary_path, run / CHECKPOINT_FILE, run / PREDICTIONS_FILE):
        if not required.is_file():
            raise RegistrationError(f"{run}: {required.name} is missing; train the run to the end")
    cfg = TrainConfig.load(config_path)
    summary = json.loads(summary_path.read_text())
    outputs = ",".join(summary["outputs"])
    name = method or method_name(cfg)
    try:
        body = Client(client, token).submit(cfg.country, name, run / PREDICTIONS_FILE,
                                            run / CHECKPOINT_FILE, outputs)
    except ClientError as exc:
        raise RegistrationError(f"{run}: the server refused the submission ({exc.status}): "
                                f"{describe_error(exc.body)}") from None
    return Registration(
        run=run,
        country=cfg.country,
        method=name,
        outputs=outputs,
        submission_id=str(body.get("id")),
        state=str(body.get("state")),
    )


def wait_until_scored(
    entry: Registration,
    client: httpx.Client,
    token: str,
    timeout_s: float = 600.0,
    poll_s: float = 2.0,
) -> Registration:
    """Poll the submission until the service has scored it or failed it (with its reason)."""
    try:
        body = Client(client, token).wait_until_finished(int(entry.submission_id), timeout_s,
                                                         poll_s)
    except ClientError as exc:
        raise RegistrationError(f"submission {entry.submission_id} refused ({exc.status}): "
                                f"{describe_error(exc.body)}") from None
    return replace(entry, state=str(body.get("state")), reason=body.get("reason"))


def request_verification(
    entry: Registration, client: httpx.Client, organiser_token: str
) -> Registration:
    """Ask the service (as an organiser) to run the entry's checkpoint and compare it with its
    prediction file; the leaderboard then shows the entry as verified."""
    try:
        body = Client(client, organiser_token).request_verification(int(entry.submission_id))
    except ClientError as exc:
        raise RegistrationError(
            f"verification of submission {entry.submission_id} refused ({exc.status}): "
            f"{describe_error(exc.body)}") from None
    return replace(entry, verification=body)
