"""HTTP of the challenge's calendar: the public schedule, a team's final selection, withdrawal."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app.auth import team_for_token
from app.deps import CurrentTeam, IdPath, SessionDep
from app.errors import AppError, error_responses
from app.models import Selection, Submission, Team

from . import selection
from .deps import ChallengeNow, Moment
from .schedule import Schedule

router = APIRouter(tags=["challenge"])
pages = APIRouter(include_in_schema=False)


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


def _change_selection(change: Callable[[Session, Team, int, Schedule, datetime], object],
                      submission_id: int, team: Team, session: Session,
                      moment: Moment) -> SelectionOut:
    """Select or unselect (`change`) at the challenge's current moment, and the result."""
    change(session, team, submission_id, moment.schedule, moment.now)
    session.commit()
    return selection_out(session, team.id, submission_id, moment.schedule.selection_limit,
                         moment.locked)


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
    return _change_selection(selection.select_submission, submission_id, team, session, moment)


@router.delete("/submissions/{submission_id}/selection", response_model=SelectionOut,
               summary="Stop counting this submission for the final ranking",
               responses=error_responses(401, 404, 409))
def delete_selection(submission_id: IdPath, team: CurrentTeam, session: SessionDep,
                     moment: ChallengeNow) -> SelectionOut:
    return _change_selection(selection.unselect_submission, submission_id, team, session,
                             moment)


@router.post("/submissions/{submission_id}/withdraw", response_model=WithdrawnOut,
             summary="Withdraw one's own entry from the boards (organisers still see it)",
             responses=error_responses(401, 404, 409))
def withdraw(submission_id: IdPath, request: Request, team: CurrentTeam, session: SessionDep,
             moment: ChallengeNow) -> WithdrawnOut:
    sub = selection.withdraw_submission(session, team, submission_id)
    session.commit()
    _invalidate(request)
    return WithdrawnOut(submission_id=sub.id, withdrawn=True)


MAX_FORM_BYTES = 4096


async def _token_field(request: Request) -> str:
    """The form's `token`, read with a byte cap ("" for anything else)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return ""
    try:
        return dict(parse_qsl(body.decode("utf-8"), max_num_fields=4)).get("token", "")
    except (UnicodeDecodeError, ValueError):
        return ""


@pages.post("/submissions/{submission_id}/withdraw")
async def withdraw_page(submission_id: IdPath, request: Request,
                        session: SessionDep) -> Response:
    """The submission page's form: the team's token typed in (it is the credential, so a forged
    form cannot act), then the same withdrawal as the API."""
    token = (await _token_field(request)).strip()
    team = await run_in_threadpool(team_for_token, session, token) if token else None
    if team is None:
        return RedirectResponse(f"/submissions/{submission_id}?err=token", status_code=303)

    def act() -> None:
        selection.withdraw_submission(session, team, submission_id)
        session.commit()

    try:
        await run_in_threadpool(act)
    except AppError as exc:
        return RedirectResponse(f"/submissions/{submission_id}?err={exc.code}",
                                status_code=303)
    _invalidate(request)
    return RedirectResponse(f"/submissions/{submission_id}?msg=withdrawn", status_code=303)
