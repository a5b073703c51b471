"""`leaderboard demo` end to end at a small size: data, teams, a real server on SQLite, the
participants' files, baselines trained, entered and verified; a second run reuses it all."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from app.cli import cli
from app.cli.demo import (
    ENTERED_FILE,
    MARKER,
    PARTICIPANTS_FILE,
    TOKENS_FILE,
    DemoError,
    DemoPlan,
    run_demo,
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def rows(folder: Path, query: str) -> list[tuple[object, ...]]:
    engine = create_engine(f"sqlite:///{folder / 'leaderboard.db'}")
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(query))]
    finally:
        engine.dispose()


@pytest.mark.slow
def test_demo_builds_serves_and_enters_everything_once(tmp_path: Path) -> None:
    lines: list[str] = []
    plan = DemoPlan(folder=tmp_path / "demo", port=free_port(), countries=("NL",),
                    train_rows=8000, test_rows=8000, baselines=("dnn", "esmm"))
    run_demo(plan, lines.append, keep_serving=False)

    folder = plan.folder
    assert (folder / MARKER).is_file()
    assert (folder / "prepared" / "NL" / "meta.json").is_file()
    tokens = json.loads((folder / TOKENS_FILE).read_text())
    assert set(tokens) == {"organisers", "baselines", "logreg-lab", "coin-flip", "newcomer"}
    # The team offered to a person trying the demo is printed with its token and has its
    # whole day's quota: the demo entered nothing for it.
    assert any(tokens["newcomer"] in line and "/login" in line and "all 5" in line
               for line in lines), lines
    assert (folder / TOKENS_FILE).stat().st_mode & 0o077 == 0
    subs = rows(folder, "SELECT t.name, s.method, s.state FROM submission s "
                        "JOIN team t ON t.id = s.team_id ORDER BY s.id")
    assert [(team, state) for team, _, state in subs] == [
        ("logreg-lab", "scored"), ("coin-flip", "scored"),
        ("baselines", "scored"), ("baselines", "scored")]
    # Three tasks on three splits, for each submission, once.
    per_sub = rows(folder, "SELECT submission_id, count(*) FROM score GROUP BY submission_id")
    assert sorted(int(str(count)) for _, count in per_sub) == [9, 9, 9, 9]
    verifications = rows(folder, "SELECT state, verified FROM verification")
    assert verifications == [("done", 1), ("done", 1)]
    assert any("2 of 2 checkpoints reproduce" in line for line in lines)

    # The participants' logistic regression learns something; random guessing does not.
    auc = {team: value for team, value in rows(
        folder, "SELECT t.name, sc.auc FROM score sc JOIN submission s "
                "ON s.id = sc.submission_id JOIN team t ON t.id = s.team_id "
                "WHERE sc.split = 'full' AND sc.task = 'ctr'")}
    assert float(str(auc["logreg-lab"])) > 0.6
    assert 0.4 < float(str(auc["coin-flip"])) < 0.6

    # A second run serves what is there: no new teams, submissions or training. Even a run cut
    # off before it recorded the participants' entries sends them again without a duplicate.
    (folder / PARTICIPANTS_FILE).unlink()
    lines.clear()
    run_demo(plan, lines.append, keep_serving=False)
    assert (folder / PARTICIPANTS_FILE).is_file()
    assert any("reusing" in line for line in lines)
    assert len(rows(folder, "SELECT id FROM submission")) == 4
    assert len(rows(folder, "SELECT id FROM team")) == 5
    assert rows(folder, "SELECT count(*) FROM submission s JOIN team t ON t.id = s.team_id "
                        "WHERE t.name = 'newcomer'") == [(0,)]
    assert any(tokens["newcomer"] in line for line in lines)
    assert len(json.loads((folder / ENTERED_FILE).read_text())) == 2


def test_demo_refuses_a_folder_it_did_not_make(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    with pytest.raises(DemoError, match="was not made by `leaderboard demo`"):
        run_demo(DemoPlan(folder=mine, port=free_port()), lambda _line: None,
                 keep_serving=False)
    assert (mine / "thesis.tex").read_text() == "precious"


def test_demo_command_names_a_bad_country_or_model(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["demo", "--dir", str(tmp_path / "d"), "--countries", "NL,XX"])
    assert result.exit_code == 2
    assert "XX" in result.output
    result = runner.invoke(cli, ["demo", "--dir", str(tmp_path / "d"), "--baselines", "gpt"])
    assert result.exit_code == 2
    assert "gpt" in result.output
    assert not (tmp_path / "d").exists()
