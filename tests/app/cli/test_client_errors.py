"""The CLI's refusals and failures as readable lines (app/cli/client.py, participant.py)."""

from __future__ import annotations

from typing import Any

from typer.testing import CliRunner

from app.cli import cli
from app.cli.client import describe_error
from app.cli.participant import reason_lines


def test_a_refused_file_reads_as_one_problem_a_line_with_lines_and_columns() -> None:
    body = {"error": "invalid_file", "detail": {
        "message": "file: prediction file refused: 1000 × missing row_id",
        "problems": [{"message": "missing row_id", "row": None, "column": "row_id",
                      "value": None, "count": 1000},
                     {"message": "not a number", "row": 3, "column": "ctr", "value": "x",
                      "count": 1}]}}
    text = describe_error(body)
    assert text.splitlines() == [
        "invalid_file: file: prediction file refused: 1000 × missing row_id",
        "  - column row_id: missing row_id — 1000 times",
        "  - line 3, column ctr: not a number (value 'x')",
    ]
    assert "\\u00d7" not in text and "{" not in text


def test_validation_errors_and_quota_read_as_lines() -> None:
    body: Any = {"error": "invalid", "detail": [{"loc": ["body", "name"], "message": "too long"}]}
    assert describe_error(body).splitlines() == ["invalid", "  - body.name: too long"]
    quota = {"error": "quota_exceeded", "detail": {
        "message": "the daily quota of 5 submissions is used up", "limit": 5, "used": 5,
        "resets_at": "2026-12-03T00:00:00+00:00"}}
    assert describe_error(quota) == ("quota_exceeded: the daily quota of 5 submissions is used "
                                     "up (limit 5, used 5, resets_at 2026-12-03T00:00:00+00:00)")
    assert describe_error({"error": "not_found", "detail": "no submission 3"}) == (
        "not_found: no submission 3")


def test_a_failure_reason_is_split_into_its_problems() -> None:
    reason = "prediction file refused:\n- line 3: not a number\n- line 9: above 1\n"
    assert reason_lines(reason) == ["prediction file refused:", "line 3: not a number",
                                    "line 9: above 1"]
    assert reason_lines(None) == []


def test_submit_help_says_how_to_export_multi_task_library_models() -> None:
    result = CliRunner().invoke(cli, ["submit", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "torch.jit.trace" in text and "(pCTR, pCTCVR)" in text and "ctr,ctcvr" in text


def test_status_lists_each_problem_of_a_failed_submission_on_its_own_line(
        settings: Any, live_server: tuple[str, int], make_team: Any) -> None:
    from app.db import make_engine, session_factory
    from app.models import Submission

    team, token = make_team("alpha")
    engine = make_engine(settings)
    try:
        with session_factory(engine)() as session:
            sub = Submission(team_id=team.id, country="NL", method="broken", state="failed",
                             reason="checkpoint failed:\n- output ctr is not finite at 3 rows\n"
                                    "- time limit: 1800 s", attempts=3)
            session.add(sub)
            session.commit()
            sid = sub.id
    finally:
        engine.dispose()
    server = f"http://{live_server[0]}:{live_server[1]}"
    result = CliRunner().invoke(cli, ["status", "--server", server, "--token", token])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    head = next(i for i, line in enumerate(lines) if line.strip().startswith(str(sid)))
    assert "failed" in lines[head] and "broken" in lines[head]
    assert [line.strip() for line in lines[head + 1:head + 4]] == [
        "- checkpoint failed:", "- output ctr is not finite at 3 rows", "- time limit: 1800 s"]
