"""HTTP of the challenge's calendar: the public schedule, a team's final selection, withdrawal."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.deps import CurrentTeam, IdPath, SessionDep
from app.errors import error_responses
from app.models import Selection, Submission

from . import selection
from .deps import ChallengeNow

router = APIRouter(tags=["challenge"])


class SelectionOut(BaseModel):
    submission_id: int
    country: str
    selected: bool
    mark: str | None = Field(description="`manual`, `auto` (chosen at the lock) or null")
    selected_in_country: list[int] = Field(description="the team's selections in this country")
    limit: int
    locked: bool


class WithdrawnOut(BaseModel):
    submission_id: int
    withdrawn: bool


def _invalidate(request: Request) -> None:
    board = getattr(request.app.state, "leaderboard", None)
    if board is not None:
        board.invalidate()


def selection_out(session: Session, team_id: int, submission_id: int, limit: int,
                  locked: bool) -> SelectionOut:
    sub = session.get(Submission, submission_id)
    assert sub is not None
    rows = session.execute(select(Selection.submission_id, Selection.auto).where(
        Selection.team_id == team_id, Selection.country == sub.country)
        .order_by(Selection.submission_id)).all()
    marks = {sid: "auto" if auto else "manual" for sid, auto in rows}
    return SelectionOut(submission_id=submission_id, country=sub.country,
                        selected=submission_id in marks, mark=marks.get(submission_id),
                        selected_in_country=[sid for sid, _ in rows], limit=limit,
                        locked=locked)


@router.get("/challenge", summary="The challenge's phases, the current phase, the end and the "
                                  "rules (public)")
def get_challenge(session: SessionDep, moment: ChallengeNow) -> dict[str, Any]:
    body = moment.schedule.as_json(moment.now)
    body["locked"] = moment.locked
    return body


@router.put("/submissions/{submission_id}/selection", response_model=SelectionOut,
            summary="Count this submission for the final ranking",
            responses=error_responses(401, 404, 409))
def put_selection(submission_id: IdPath, team: CurrentTeam, session: SessionDep,
                  moment: ChallengeNow) -> SelectionOut:
    selection.select_submission(session, team, submission_id, moment.schedule, moment.now)
    session.commit()
    return selection_out(session, team.id, submission_id, moment.schedule.selection_limit,
                         moment.locked)


@router.delete("/submissions/{submission_id}/selection", response_model=SelectionOut,
               summary="Stop counting this submission for the final ranking",
               responses=error_responses(401, 404, 409))
def delete_selection(submission_id: IdPath, team: CurrentTeam, session: SessionDep,
                     moment: ChallengeNow) -> SelectionOut:
    selection.unselect_submission(session, team, submission_id, moment.schedule, moment.now)
    session.commit()
    return selection_out(session, team.id, submission_id, moment.schedule.selection_limit,
                         moment.locked)


@router.post("/submissions/{submission_id}/withdraw", response_model=WithdrawnOut,
             summary="Withdraw one's own entry from the boards (organisers still see it)",
             responses=error_responses(401, 404, 409))
def withdraw(submission_id: IdPath, request: Request, team: CurrentTeam, session: SessionDep,
             moment: ChallengeNow) -> WithdrawnOut:
    sub = selection.withdraw_submission(session, team, submission_id)
    session.commit()
    _invalidate(request)
    return WithdrawnOut(submission_id=sub.id, withdrawn=True)
