"""Organiser actions and their audit rows (app/organiser/service.py)."""

from __future__ import annotations

import pytest
from app_factories import add_submission, add_team
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import AppError
from app.models import AuditLog, ChallengeState, Submission
from app.organiser import service
from evaluator.scoring import SCORER_VERSION


def audit_rows(session: Session) -> list[AuditLog]:
    return list(session.execute(select(AuditLog).order_by(AuditLog.id)).scalars())


def test_hide_sets_the_flag_and_records_who_and_why(lb_session: Session) -> None:
    organiser = add_team(lb_session, "org", organiser=True)
    submission = add_submission(lb_session, add_team(lb_session, "a"))
    service.set_hidden(lb_session, organiser, submission.id, True, "  leaked   labels ")
    lb_session.commit()
    assert lb_session.get_one(Submission, submission.id).hidden
    (row,) = audit_rows(lb_session)
    assert (row.actor_team_id, row.action, row.target_type, row.target_id) == (
        organiser.id, "hide", "submission", submission.id)
    assert row.detail == {"reason": "leaked labels", "was_hidden": False}
    assert row.created_at is not None


def test_unhide_is_recorded_too(lb_session: Session) -> None:
    submission = add_submission(lb_session, add_team(lb_session, "a"), hidden=True)
    service.set_hidden(lb_session, None, submission.id, False)
    assert not submission.hidden
    assert [r.action for r in audit_rows(lb_session)] == ["unhide"]


def test_disqualify_needs_a_reason(lb_session: Session) -> None:
    submission = add_submission(lb_session, add_team(lb_session, "a"))
    with pytest.raises(AppError) as failure:
        service.set_disqualified(lb_session, None, submission.id, True, "   ")
    assert failure.value.status == 422
    assert audit_rows(lb_session) == []
    service.set_disqualified(lb_session, None, submission.id, True, "used test labels")
    assert submission.disqualified
    assert audit_rows(lb_session)[0].action == "disqualify"


def test_overlong_reason_is_refused(lb_session: Session) -> None:
    submission = add_submission(lb_session, add_team(lb_session, "a"))
    with pytest.raises(AppError, match="at most 500"):
        service.set_hidden(lb_session, None, submission.id, True, "x" * 501)


def test_unknown_submission_is_not_found(lb_session: Session) -> None:
    with pytest.raises(AppError) as failure:
        service.set_hidden(lb_session, None, 12345, True)
    assert failure.value.status == 404


def test_reveal_sets_the_state_row_and_records_it(lb_session: Session) -> None:
    organiser = add_team(lb_session, "org", organiser=True)
    state = service.set_revealed(lb_session, organiser, True)
    lb_session.commit()
    assert state.revealed
    assert state.revealed_at is not None
    assert lb_session.execute(select(ChallengeState)).scalar_one().revealed
    service.set_revealed(lb_session, organiser, False)
    assert [r.action for r in audit_rows(lb_session)] == ["reveal", "unreveal"]
    assert lb_session.execute(select(ChallengeState)).scalar_one().revealed_at is None


def test_rescore_plans_every_scored_submission(lb_session: Session) -> None:
    team = add_team(lb_session, "a")
    scored = [add_submission(lb_session, team).id for _ in range(3)]
    add_submission(lb_session, team, state="failed", auc=None)
    plan = service.plan_rescore(lb_session, None)
    assert plan.submission_ids == scored
    assert plan.scorer_version == SCORER_VERSION
    (row,) = audit_rows(lb_session)
    assert row.action == "rescore"
    assert row.detail is not None and row.detail["submissions"] == 3


def test_rescore_of_named_submissions_refuses_unknown_ids(lb_session: Session) -> None:
    submission = add_submission(lb_session, add_team(lb_session, "a"))
    assert service.plan_rescore(lb_session, None, [submission.id]).submission_ids == [
        submission.id]
    with pytest.raises(AppError, match="no submission 999"):
        service.plan_rescore(lb_session, None, [submission.id, 999])


def test_audit_entries_name_the_actor_newest_first(lb_session: Session) -> None:
    organiser = add_team(lb_session, "org", organiser=True)
    submission = add_submission(lb_session, add_team(lb_session, "a"))
    service.set_hidden(lb_session, organiser, submission.id, True)
    service.set_revealed(lb_session, None, True)
    entries = service.audit_entries(lb_session)
    assert [(e["action"], e["actor"]) for e in entries] == [("reveal", None), ("hide", "org")]


def test_control_characters_in_a_reason_are_stored_as_spaces(lb_session: Session) -> None:
    submission = add_submission(lb_session, add_team(lb_session, "a"))
    service.set_hidden(lb_session, None, submission.id, True, "bad\x00file\x1b[31m\ud800")
    lb_session.commit()
    (row,) = audit_rows(lb_session)
    assert row.detail is not None
    assert row.detail["reason"] == "bad file [31m"
