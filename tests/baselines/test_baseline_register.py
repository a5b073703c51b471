"""Entering a trained run through the real service (baselines/register.py).

The shared `client` runs the queue in immediate mode, so each job (scoring, the sandboxed
verification run) has finished when its POST returns. SQLite only: the HTTP path is the same on
both databases and the service's own tests cover PostgreSQL.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from baselines_factories import tiny_config

from baselines.data import CountryData, load_country
from baselines.register import (
    RegistrationError,
    find_runs,
    register_run,
    request_verification,
    wait_until_scored,
)
from baselines.train import task_aucs, train
from evaluator.data.prepared import PreparedData

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@pytest.fixture(scope="session")
def service_run(
    prepared_template: Path, nl_data: CountryData, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A run trained on synthetic train data and predicting the service's own NL test set
    (laid out as $LB_DATA_DIR: prepared/NL is the test set, prepared/NL/train beside it)."""
    root = tmp_path_factory.mktemp("service-data")
    shutil.copytree(prepared_template, root / "prepared" / "NL")
    shutil.copytree(nl_data.train.path, root / "prepared" / "NL" / "train")
    run = tmp_path_factory.mktemp("service-run") / "NL_esmm"
    train(tiny_config("esmm"), load_country(root, "NL"), run, progress=False, threads=1)
    return run


def _get(client: Any, token: str, path: str) -> Any:
    response = client.get(path, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    return response.json()


@sqlite_only
def test_a_registered_run_is_scored_as_its_own_test_aucs(
    client: Any,
    make_team: Callable[..., tuple[Any, str]],
    service_run: Path,
    prepared_template: Path,
) -> None:
    _, token = make_team("Challenge baselines", baseline=True)
    entry = wait_until_scored(register_run(service_run, client, token), client, token, 30)
    assert entry.state == "scored", entry.reason
    assert (entry.country, entry.outputs) == ("NL", "ctr,cvr,ctcvr")
    body = _get(client, token, f"/api/v1/submissions/{entry.submission_id}")
    assert body["has_file"] and body["has_checkpoint"]
    # During the challenge a team sees the public split: score the run's own file on it.
    test = PreparedData.open(prepared_template)
    public = np.asarray(test.public)
    frame = pd.read_csv(service_run / "predictions.csv.gz")
    ours = task_aucs(
        frame[["ctr", "cvr", "ctcvr"]].to_numpy()[public],
        ("ctr", "cvr", "ctcvr"),
        np.asarray(test.click)[public],
        np.asarray(test.conversion)[public],
    )
    for task, auc in ours.items():
        served = body["scores"]["public"][task]["auc"]
        assert (auc is None) == (served is None), task
        if auc is not None:
            assert served == pytest.approx(auc, abs=1e-12), task


@sqlite_only
def test_the_leaderboard_marks_the_entry_as_a_baseline(
    client: Any, make_team: Callable[..., tuple[Any, str]], service_run: Path
) -> None:
    _, token = make_team("Challenge baselines", baseline=True)
    entry = wait_until_scored(register_run(service_run, client, token), client, token, 30)
    board = client.get("/api/v1/leaderboard/NL").json()
    ours = [e for e in board["entries"] if e["method"] == entry.method]
    assert entry.method == "ESMM (small: embed 4)"
    assert len(ours) == 1 and ours[0]["baseline"] is True


@sqlite_only
def test_an_organiser_verification_finds_the_checkpoint_matches_the_file(
    client: Any, make_team: Callable[..., tuple[Any, str]], service_run: Path
) -> None:
    _, token = make_team("Challenge baselines", baseline=True)
    _, organiser = make_team("Organisers", organiser=True)
    entry = wait_until_scored(register_run(service_run, client, token), client, token, 30)
    entry = request_verification(entry, client, organiser)
    assert entry.verification is not None
    verifications = _get(
        client, organiser, f"/api/v1/submissions/{entry.submission_id}/verifications"
    )
    assert verifications[0]["state"] == "done", verifications[0]["reason"]
    assert verifications[0]["verified"] is True


@sqlite_only
def test_a_refused_registration_says_what_the_service_answered(
    client: Any, service_run: Path
) -> None:
    with pytest.raises(RegistrationError, match=r"refused the submission \(401\)"):
        register_run(service_run, client, "not-a-token")


@sqlite_only
def test_an_incomplete_run_is_refused_before_anything_is_sent(
    service_run: Path, tmp_path: Path, client: Any
) -> None:
    partial = tmp_path / "partial"
    shutil.copytree(service_run, partial)
    (partial / "predictions.csv.gz").unlink()
    with pytest.raises(RegistrationError, match=r"predictions\.csv\.gz is missing"):
        register_run(partial, client, "unused")


def test_find_runs_accepts_a_run_or_a_folder_of_runs(service_run: Path) -> None:
    assert find_runs([service_run]) == [service_run]
    assert find_runs([service_run.parent]) == [service_run]
