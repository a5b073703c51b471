"""`leaderboard select` / `unselect` / `status` against a real server (uvicorn in a thread), on
SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import httpx
from typer.testing import CliRunner

from app.cli import cli


def run(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), env={})


def test_select_unselect_and_status_show_the_selection(live_server: tuple[str, int],
                                                       make_team: Any,
                                                       make_predictions: Any) -> None:
    host, port = live_server
    server = f"http://{host}:{port}"
    _, token = make_team("alpha")
    _, other = make_team("beta")
    with httpx.Client(base_url=server) as http:
        sid = http.post("/api/v1/submissions", headers={"Authorization": f"Bearer {token}"},
                        files={"file": ("p.csv", make_predictions(seed=1)[0], "text/csv")},
                        data={"country": "NL", "method": "mine"}).json()["id"]
    chosen = run("select", str(sid), "--server", server, "--token", token)
    assert chosen.exit_code == 0, chosen.output
    assert f"submission {sid} selected; selected in NL: {sid} (at most 2)" in chosen.output
    listed = run("status", "--server", server, "--token", token)
    assert "[selected (manual)]" in listed.output
    refused = run("select", str(sid), "--server", server, "--token", other)
    assert refused.exit_code == 1 and "HTTP 404: not_found" in refused.output
    dropped = run("unselect", str(sid), "--server", server, "--token", token)
    assert dropped.exit_code == 0 and "not selected" in dropped.output
    assert "selected (" not in run("status", "--server", server, "--token", token).output
