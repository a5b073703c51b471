"""Entering a trained run through the service's HTTP API, exactly as a participant would:
`POST /api/v1/submissions` with the prediction file and the TorchScript checkpoint, so that the
entry can be verified. The token must belong to a baseline team
(`leaderboard admin create-team NAME --baseline`); that is what marks the entry as a baseline."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx

from baselines.config import ModelConfig, TrainConfig
from baselines.models import DISPLAY_NAMES
from baselines.train import CHECKPOINT_FILE, CONFIG_FILE, PREDICTIONS_FILE, SUMMARY_FILE

SUBMISSIONS_PATH = "/api/v1/submissions"


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


def _error_detail(response: httpx.Response) -> str:
    try:
        body: Any = response.json()
    except ValueError:
        return response.text[:500] or response.reason_phrase
    if isinstance(body, dict) and "error" in body:
        detail = body.get("detail")
        return f"{body['error']}: {detail if isinstance(detail, str) else json.dumps(detail)}"
    return json.dumps(body)[:500]


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
    with (
        (run / PREDICTIONS_FILE).open("rb") as predictions,
        (run / CHECKPOINT_FILE).open("rb") as checkpoint,
    ):
        response = client.post(
            SUBMISSIONS_PATH,
            headers={"Authorization": f"Bearer {token}"},
            data={"country": cfg.country, "method": name, "outputs": outputs},
            files={
                "file": (PREDICTIONS_FILE, predictions, "application/gzip"),
                "checkpoint": (CHECKPOINT_FILE, checkpoint, "application/octet-stream"),
            },
        )
    if response.status_code not in (200, 201, 202):
        raise RegistrationError(
            f"{run}: the server refused the submission ({response.status_code}): "
            f"{_error_detail(response)}"
        )
    body = response.json()
    return Registration(
        run=run,
        country=cfg.country,
        method=name,
        outputs=outputs,
        submission_id=str(body.get("id")),
        state=str(body.get("state")),
    )


def _json(response: httpx.Response, what: str) -> dict[str, Any]:
    if response.status_code >= 400:
        raise RegistrationError(
            f"{what} refused ({response.status_code}): {_error_detail(response)}"
        )
    body: dict[str, Any] = response.json()
    return body


def wait_until_scored(
    entry: Registration,
    client: httpx.Client,
    token: str,
    timeout_s: float = 600.0,
    poll_s: float = 2.0,
) -> Registration:
    """Poll the submission until the service has scored it or failed it (with its reason)."""
    deadline = time.monotonic() + timeout_s
    while True:
        body = _json(
            client.get(
                f"{SUBMISSIONS_PATH}/{entry.submission_id}",
                headers={"Authorization": f"Bearer {token}"},
            ),
            f"submission {entry.submission_id}",
        )
        state = str(body.get("state"))
        if state in ("scored", "failed") or time.monotonic() >= deadline:
            return replace(entry, state=state, reason=body.get("reason"))
        time.sleep(poll_s)


def request_verification(
    entry: Registration, client: httpx.Client, organiser_token: str
) -> Registration:
    """Ask the service (as an organiser) to run the entry's checkpoint and compare its AUCs
    with those of its prediction file; the leaderboard then shows the entry as verified."""
    body = _json(
        client.post(
            f"{SUBMISSIONS_PATH}/{entry.submission_id}/verify",
            headers={"Authorization": f"Bearer {organiser_token}"},
        ),
        f"verification of submission {entry.submission_id}",
    )
    return replace(entry, verification=body)
