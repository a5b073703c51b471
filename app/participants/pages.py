"""`/login`, `/logout`, `/me` and the JSON `/me` polls for live status.

A team signs in with its API token: the token is exchanged for a session cookie bound to it
(app.web.session), so revoking the token ends the session at the next request. `/me` lists the
team's own submissions newest first, with the scores the API would show them (public split only
before the reveal), rounded to 4 decimals; the page polls `/me/submissions.json` so states change
without a reload. The upload form posts to `/me/submissions` (app.submissions.pages).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app import challenge
from app.deps import SessionDep
from app.leaderboard.service import HistoryPoint, score_history_plots
from app.models import Submission, Team
from app.submissions import service as submissions
from app.submissions.schemas import QuotaOut, SubmissionOut
from app.web.forms import small_form
from app.web.render import problem_lines, render
from app.web.session import (
    SignedIn,
    authenticate,
    check_csrf,
    clear_session_cookie,
    csrf_token,
    same_origin,
    secret_of,
    set_session_cookie,
    signed_in,
)
from evaluator.schema import TASKS

router = APIRouter(include_in_schema=False)

PAGE_SUBMISSIONS = 200
DECIMALS = 4
TASK_NAMES = {"ctr": "CTR", "cvr": "CVR", "ctcvr": "CTCVR"}
# The multi-task library's models return (pCTR, pCTCVR); tracing is the export that works.
CHECKPOINT_NOTE = (
    "A checkpoint is a TorchScript archive (torch.jit.save), called as model(categorical int64 "
    "[B, 16], numerical float32 [B, 63]). Models of the multi-task library the baselines come "
    "from return (pCTR, pCTCVR): declare their outputs ctr,ctcvr. Export them with "
    "torch.jit.trace on a sample batch (torch.jit.script fails on them).")

ERRORS = {
    "token": "That token is unknown or revoked.",
    "form": "The form could not be read.",
    "site": "That form was sent from another site; nothing was done.",
    "csrf": "The form expired; try again.",
    "signin": "Sign in first (your session ended, or the token it was made with was "
              "revoked).",
}


def _page(html: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})


def _to_login(err: str | None = None) -> RedirectResponse:
    return RedirectResponse("/login" + (f"?err={err}" if err else ""), status_code=303)


# ------------------------------------------------------------------------------- sign in/out


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, session: SessionDep) -> Response:
    if signed_in(request, session) is not None:
        return RedirectResponse("/me", status_code=303)
    error = ERRORS.get(request.query_params.get("err", ""))
    return _page(render("login.html", error=error, nav="me"))


@router.post("/login")
async def login(request: Request, session: SessionDep) -> Response:
    if not same_origin(request):
        return _to_login("site")
    form = await small_form(request)
    if form is None:
        return _to_login("form")
    token = str(form.get("token", "")).strip()
    found = await run_in_threadpool(authenticate, session, token) if token else None
    if found is None:
        return _to_login("token")
    team, token_id = found
    team_id = team.id
    await run_in_threadpool(session.commit)
    response = RedirectResponse("/me", status_code=303)
    set_session_cookie(request, response, team_id, token_id)
    return response


@router.get("/logout", response_class=HTMLResponse)
def logout_page(request: Request, session: SessionDep) -> Response:
    who = signed_in(request, session)
    if who is None:
        return _to_login()
    return _page(render("logout.html", team=who.team,
                        csrf=csrf_token(secret_of(request), who.cookie), nav="me"))


@router.post("/logout")
async def logout(request: Request, session: SessionDep) -> Response:
    if not same_origin(request):
        return _to_login("site")
    who = await run_in_threadpool(signed_in, request, session)
    if who is not None:
        form = await small_form(request)
        if form is None or not check_csrf(secret_of(request), who.cookie,
                                          str(form.get("csrf", ""))):
            return RedirectResponse("/me", status_code=303)
    response = _to_login()
    clear_session_cookie(request, response)
    return response


# ------------------------------------------------------------------------------------ /me


@dataclass
class MeView:
    """Everything /me shows. `phases` and `selection` stay None until the challenge-phase
    service exists; the template has their place ready (block `phases`)."""

    team: Team
    quota: QuotaOut
    quota_left: int | None
    resets_in: str
    submissions: list[dict[str, Any]]
    methods: list[str]
    history: dict[str, Markup]
    revealed: bool
    deadline: str | None = None
    phases: Any = None
    selection: Any = None
    pending: bool = False
    warnings: list[str] = field(default_factory=list)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, DECIMALS)


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours} h {rest // 60:02d} min"


def submission_view(sub: SubmissionOut) -> dict[str, Any]:
    """A submission as /me shows and polls it: scores rounded as the API rounds them for a
    participant, the failure reason as its list of problems."""
    kind = " + ".join(k for k, has in (("file", sub.has_file), ("checkpoint", sub.has_checkpoint))
                      if has)
    if sub.file_format:
        kind += f" ({sub.file_format})"
    scores = {
        split: {task: {"auc": _rounded(s.auc), "ci_low": _rounded(s.ci_low),
                       "ci_high": _rounded(s.ci_high), "reason": s.reason}
                for task, s in tasks.items()}
        for split, tasks in sub.scores.items()}
    problems = problem_lines(sub.reason)
    return {"id": sub.id, "country": sub.country, "method": sub.method, "kind": kind,
            "outputs": sub.outputs, "state": sub.state, "attempts": sub.attempts,
            "problems": problems, "warning": sub.output_warning,
            "description": sub.description, "hidden": sub.hidden,
            "disqualified": sub.disqualified,
            "submitted_at": sub.created_at.strftime("%Y-%m-%d %H:%M UTC"), "scores": scores}


def _history(session: Session, subs: list[SubmissionOut],
             split: str) -> dict[str, Markup]:
    by_method: dict[str, list[HistoryPoint]] = {}
    for sub in subs:
        for task in TASKS:
            s = sub.scores.get(split, {}).get(task)
            if s is None or s.auc is None:
                continue
            by_method.setdefault(sub.method, []).append(HistoryPoint(
                at=sub.created_at.timestamp(), series=f"{sub.country} {TASK_NAMES[task]}",
                auc=round(s.auc, DECIMALS), low=_rounded(s.ci_low), high=_rounded(s.ci_high),
                submission_id=sub.id))
    # Markup: the SVG builder escapes every piece of text itself.
    return {m: Markup(svg) for m, svg in score_history_plots(by_method).items()}


def me_view(request: Request, session: Session, team: Team) -> MeView:
    settings = request.app.state.settings
    subs = submissions.list_own(session, team, PAGE_SUBMISSIONS, 0)
    quota = submissions.quota(session, settings, team)
    revealed = challenge.is_revealed(session)
    methods = sorted(set(session.execute(
        select(Submission.method).where(Submission.team_id == team.id)).scalars()))
    views = [submission_view(s) for s in subs]
    left = None if quota.limit is None else max(0, quota.limit - quota.used)
    return MeView(
        team=team, quota=quota, quota_left=left,
        resets_in=_duration((quota.resets_at - datetime.now(UTC)).total_seconds()),
        submissions=views, methods=methods,
        history=_history(session, subs, challenge.board_split(revealed)), revealed=revealed,
        pending=any(v["state"] in ("queued", "running") for v in views))


def _rows(view: MeView) -> str:
    return render("_me_rows.html", view=view, task_names=TASK_NAMES)


@router.get("/me", response_class=HTMLResponse)
def me_page(request: Request, session: SessionDep) -> Response:
    who = signed_in(request, session)
    if who is None:
        return _to_login("signin")
    view = me_view(request, session, who.team)
    session.commit()
    return _page(render("me.html", view=view, rows=Markup(_rows(view)),
                        csrf=csrf_token(secret_of(request), who.cookie),
                        checkpoint_note=CHECKPOINT_NOTE, nav="me"))


@router.get("/me/submissions.json")
def me_submissions(request: Request, session: SessionDep) -> Response:
    """What the page polls: the team's submissions (states, attempts, problems, rounded
    scores), the rows' HTML rendered by the page's own template, and the quota."""
    who: SignedIn | None = signed_in(request, session)
    if who is None:
        return JSONResponse({"error": "unauthorized", "detail": "sign in at /login"},
                            status_code=401, headers={"Cache-Control": "no-store"})
    view = me_view(request, session, who.team)
    session.commit()
    body = {"team": who.team.name, "pending": view.pending, "submissions": view.submissions,
            "quota": {"limit": view.quota.limit, "used": view.quota.used,
                      "left": view.quota_left, "resets_at": view.quota.resets_at.isoformat()},
            "methods": view.methods, "rows": _rows(view)}
    return JSONResponse(body, headers={"Cache-Control": "no-store"})
