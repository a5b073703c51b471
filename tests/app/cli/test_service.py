"""The service commands of `leaderboard`, through typer's CliRunner against real databases
and a real server."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, inspect
from typer.testing import CliRunner

from app.cli import cli


@pytest.fixture
def env(settings: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = {"LB_DATA_DIR": str(settings.data_dir), "LB_DATABASE_URL": settings.db_url}
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


def run(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_db_upgrade_creates_the_schema(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    monkeypatch.setenv("LB_DATABASE_URL", url)
    result = run("db", "upgrade")
    assert result.exit_code == 0, result.output
    engine = create_engine(url)
    assert "submission" in inspect(engine).get_table_names()
    engine.dispose()


def test_create_team_prints_a_working_token_once(env: dict[str, str], client: Any) -> None:
    result = run("admin", "create-team", "gamma", "--organiser")
    assert result.exit_code == 0, result.output
    token = result.stdout.strip().splitlines()[-1]
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).json()
    assert (me["name"], me["is_organiser"]) == ("gamma", True)
    listing = run("admin", "list-teams").stdout
    assert token not in listing and '"gamma"' in listing


def test_existing_team_name_is_an_error(env: dict[str, str], make_team: Any) -> None:
    make_team("gamma")
    result = run("admin", "create-team", "gamma")
    assert result.exit_code == 1
    assert "exists already" in result.stderr


def test_revoke_token_stops_the_token(env: dict[str, str], client: Any) -> None:
    token = run("admin", "create-team", "gamma").stdout.strip().splitlines()[-1]
    team = json.loads(run("admin", "list-teams").stdout.splitlines()[0])
    assert run("admin", "revoke-token", str(team["tokens"][0]["id"])).exit_code == 0
    assert client.get("/api/v1/me",
                      headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_submit_then_status_shows_the_scored_submission(
        env: dict[str, str], live_server: tuple[str, int], make_team: Any,
        make_predictions: Any, tmp_path: Path) -> None:
    _, token = make_team("alpha")
    file = tmp_path / "p.csv"
    file.write_bytes(make_predictions()[0])
    server = f"http://{live_server[0]}:{live_server[1]}"
    result = run("submit", str(file), "--server", server, "--token", token, "--country", "NL",
                 "--method", "cli", "--quiet")
    assert result.exit_code == 0, result.output
    sid = int(result.stdout.strip())
    listed = run("status", "--server", server, "--token", token)
    assert f"{sid}  NL  scored" in listed.stdout
    one = json.loads(run("status", str(sid), "--server", server, "--token", token).stdout)
    assert one["state"] == "scored" and one["scores"]["public"]["ctr"]["auc"] is not None


def test_submit_refused_file_exits_1_with_the_problems(
        env: dict[str, str], live_server: tuple[str, int], make_team: Any,
        tmp_path: Path) -> None:
    _, token = make_team("alpha")
    file = tmp_path / "p.csv"
    file.write_text("row_id,ctr,cvr\n0,2,0.5\n")
    server = f"http://{live_server[0]}:{live_server[1]}"
    result = run("submit", str(file), "--server", server, "--token", token, "--country", "NL",
                 "--method", "cli", "--quiet")
    assert result.exit_code == 1
    assert "invalid_file" in result.stderr


def test_status_against_an_unreachable_server_exits_1_with_the_reason() -> None:
    result = run("status", "--server", "http://127.0.0.1:1", "--token", "t")
    assert result.exit_code == 1
    assert "ConnectError" in result.stderr


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status  # a zombie has exited; only its parent has not reaped it


def _serve(tmp_path: Path) -> tuple[subprocess.Popen[bytes], int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LB_")}
    env["LB_DATA_DIR"] = str(tmp_path)
    process = subprocess.Popen([sys.executable, "-m", "app", "serve", "--port", str(port)],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, "serve exited while starting"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "serve did not answer"
        time.sleep(0.3)
    workers = _children(process.pid)
    assert len(workers) == 1, workers
    return process, workers[0]


def _wait_gone(pid: int) -> bool:
    deadline = time.monotonic() + 30
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    return not _alive(pid)


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_serve_never_leaves_its_queue_consumer_behind(tmp_path: Path, sig: int) -> None:
    process, worker = _serve(tmp_path)
    try:
        process.send_signal(sig)
        process.wait(timeout=60)
        assert _wait_gone(worker), f"the consumer {worker} outlived serve after signal {sig}"
    finally:
        process.kill()
        if _alive(worker):
            os.kill(worker, signal.SIGKILL)
