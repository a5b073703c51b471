"""SQL of the leaderboard (app/leaderboard/repository.py) on a migrated database."""

from __future__ import annotations

from app_factories import add_scores, add_submission, add_team
from sqlalchemy.orm import Session

from app import challenge
from app.audit import record
from app.challenge import is_revealed, version_key
from app.leaderboard.repository import (
    submission_detail,
    verified_ids,
    version_token,
    visible_entries,
)
from app.models import Verification


def test_only_scored_visible_submissions_are_entries(lb_session: Session) -> None:
    team = add_team(lb_session, "a")
    shown = add_submission(lb_session, team)
    add_submission(lb_session, team, hidden=True)
    add_submission(lb_session, team, disqualified=True)
    add_submission(lb_session, team, state="queued", auc=None)
    add_submission(lb_session, team, state="failed", auc=None)
    entries = visible_entries(lb_session, "public")
    assert [e.submission_id for e in entries] == [shown.id]
    assert set(entries[0].results) == {"ctr", "cvr", "ctcvr"}


def test_entries_use_the_newest_scorer_version(lb_session: Session) -> None:
    team = add_team(lb_session, "a")
    submission = add_submission(lb_session, team, auc=0.6, scorer_version="9")
    add_scores(lb_session, submission, 0.8, scorer_version="10")
    (entry,) = visible_entries(lb_session, "private")
    assert entry.scorer_version == "10"
    assert entry.results["ctr"].auc == 0.8


def test_scorer_versions_order_numerically() -> None:
    assert sorted(["10", "9", "2b", "1"], key=version_key) == ["1", "9", "10", "2b"]


def test_version_token_changes_with_what_the_board_shows(lb_session: Session) -> None:
    team = add_team(lb_session, "a")
    tokens = [version_token(lb_session)]
    submission = add_submission(lb_session, team)
    tokens.append(version_token(lb_session))
    add_scores(lb_session, submission, 0.9, scorer_version="2")
    tokens.append(version_token(lb_session))
    record(lb_session, None, "hide", "submission", submission.id)
    lb_session.flush()
    tokens.append(version_token(lb_session))
    challenge.state(lb_session).revealed = True
    lb_session.flush()
    tokens.append(version_token(lb_session))
    assert len(set(tokens)) == len(tokens)
    assert version_token(lb_session) == tokens[-1]  # nothing changed: same token


def test_reveal_state_reads_the_challenge_row(lb_session: Session) -> None:
    assert not is_revealed(lb_session)
    challenge.state(lb_session).revealed = True
    lb_session.flush()
    assert is_revealed(lb_session)


def test_submission_detail_groups_scores_by_split(lb_session: Session) -> None:
    team = add_team(lb_session, "<b>team</b>", baseline=True)
    submission = add_submission(lb_session, team, auc=0.75)
    detail = submission_detail(lb_session, submission.id)
    assert detail is not None
    assert detail.team == "<b>team</b>"
    assert detail.is_baseline
    assert set(detail.scores) == {"public", "private", "full"}
    assert detail.scores["public"]["cvr"].auc == 0.75
    assert submission_detail(lb_session, submission.id + 100) is None


def test_submission_queued_again_for_rescoring_keeps_its_place(lb_session: Session) -> None:
    team = add_team(lb_session, "a")
    submission = add_submission(lb_session, team, auc=0.7)
    submission.state = "queued"
    lb_session.flush()
    assert [e.submission_id for e in visible_entries(lb_session, "public")] == [submission.id]
    submission.state = "failed"
    lb_session.flush()
    assert visible_entries(lb_session, "public") == []


def test_latest_finished_verification_decides_the_verified_mark(lb_session: Session) -> None:
    team = add_team(lb_session, "a")
    submission = add_submission(lb_session, team)
    token = version_token(lb_session)
    lb_session.add(Verification(submission_id=submission.id, tolerance=1e-4, verified=True))
    lb_session.flush()
    assert version_token(lb_session) != token
    (entry,) = visible_entries(lb_session, "public")
    assert entry.verified
    lb_session.add(Verification(submission_id=submission.id, tolerance=1e-4, verified=False))
    lb_session.add(Verification(submission_id=submission.id, tolerance=1e-4))  # still queued
    lb_session.flush()
    (entry,) = visible_entries(lb_session, "public")
    assert not entry.verified
    assert verified_ids(lb_session) == set()
