"""Organiser API under /api/v1/organiser (bearer token of an organiser team) and the
organiser page at /organiser (a login form setting a signed cookie; POST forms with CSRF)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from pydantic import BaseModel, Field

from app import challenge
from app.deps import EnqueueDep, IdPath, OrganiserTeam, SessionDep
from app.errors import error_responses

from . import service
from .web import pages

router = APIRouter()
api = APIRouter(prefix="/api/v1/organiser", tags=["organiser"])

ERRORS = error_responses(401, 403, 404, 422)


class Reason(BaseModel):
    reason: str | None = Field(default=None, max_length=service.MAX_REASON,
                               description="why; shown in the audit log")


class SubmissionFlags(BaseModel):
    id: int
    hidden: bool
    disqualified: bool


class RevealState(BaseModel):
    revealed: bool
    revealed_at: str | None


class RescoreRequest(BaseModel):
    submission_ids: list[Annotated[int, Field(ge=1, le=2**31 - 1)]] | None = Field(
        default=None, description="only these; all scored submissions when absent",
        max_length=100_000)


class RescoreResult(BaseModel):
    scorer_version: str
    enqueued: int


class AuditEntry(BaseModel):
    id: int
    at: str
    actor: str | None
    action: str
    target_type: str | None
    target_id: int | None
    detail: Any


def invalidate_leaderboard(request: Request) -> None:
    """Changes made here show at once in this process (other processes see them within
    LB_LEADERBOARD_CHECK_SECONDS)."""
    board = getattr(request.app.state, "leaderboard", None)
    if board is not None:
        board.invalidate()


def _flags(sub: Any) -> SubmissionFlags:
    return SubmissionFlags(id=sub.id, hidden=bool(sub.hidden),
                           disqualified=bool(sub.disqualified))


def _flag_route(action: str) -> Any:
    def endpoint(submission_id: IdPath, request: Request, session: SessionDep,
                 organiser: OrganiserTeam,
                 body: Annotated[Reason | None, Body()] = None) -> SubmissionFlags:
        reason = body.reason if body is not None else None
        if action in ("hide", "unhide"):
            sub = service.set_hidden(session, organiser, submission_id, action == "hide",
                                     reason)
        else:
            sub = service.set_disqualified(session, organiser, submission_id,
                                           action == "disqualify", reason)
        result = _flags(sub)
        session.commit()
        invalidate_leaderboard(request)
        return result

    endpoint.__name__ = f"{action}_submission"
    return endpoint


for _action, _summary in (
    ("hide", "Hide a submission from the leaderboard"),
    ("unhide", "Show a hidden submission again"),
    ("disqualify", "Disqualify a submission (a reason is required)"),
    ("requalify", "Undo a disqualification"),
):
    api.add_api_route(f"/submissions/{{submission_id}}/{_action}", _flag_route(_action),
                      methods=["POST"], summary=_summary, response_model=SubmissionFlags,
                      responses=ERRORS)


@api.post("/rescore", response_model=RescoreResult, responses=ERRORS,
          summary="Score submissions again under the installed scorer version")
def rescore(session: SessionDep, organiser: OrganiserTeam, enqueue: EnqueueDep,
            body: Annotated[RescoreRequest | None, Body()] = None) -> RescoreResult:
    plan = service.plan_rescore(session, organiser,
                                body.submission_ids if body is not None else None)
    session.commit()
    service.enqueue_all(plan, enqueue)
    return RescoreResult(scorer_version=plan.scorer_version, enqueued=len(plan.submission_ids))


def _reveal_state(state: Any) -> RevealState:
    at = state.revealed_at.isoformat() if state.revealed_at is not None else None
    return RevealState(revealed=bool(state.revealed), revealed_at=at)


@api.post("/reveal", response_model=RevealState, responses=ERRORS,
          summary="Reveal the private split: the leaderboard switches to it")
def reveal(request: Request, session: SessionDep, organiser: OrganiserTeam) -> RevealState:
    result = _reveal_state(challenge.set_revealed(session, organiser, True))
    session.commit()
    invalidate_leaderboard(request)
    return result


@api.post("/unreveal", response_model=RevealState, responses=ERRORS,
          summary="Take the reveal back (the leaderboard shows the public split again)")
def unreveal(request: Request, session: SessionDep, organiser: OrganiserTeam) -> RevealState:
    result = _reveal_state(challenge.set_revealed(session, organiser, False))
    session.commit()
    invalidate_leaderboard(request)
    return result


@api.get("/audit", response_model=list[AuditEntry], responses=ERRORS,
         summary="The audit log, newest first")
def audit_log(session: SessionDep, organiser: OrganiserTeam,
              limit: int = 200) -> list[AuditEntry]:
    return [AuditEntry(**e) for e in service.audit_entries(session, max(1, min(limit, 1000)))]


router.include_router(api)
router.include_router(pages)
