"""`/login`, `/logout`, `/me` and the JSON `/me` polls for live status.

A team signs in with its API token: the token is exchanged for a session cookie bound to it
(app.web.session), so revoking the token ends the session at the next request. `/me` lists the
team's own submissions newest first, with the scores the API would show them (public split only
before the reveal), rounded to 4 decimals; the page polls `/me/submissions.json` so states change
without a reload. The upload form posts to `/me/submissions` (app.submissions.pages).

With a challenge file, /me also shows the phase open now, what is left of its limits and the
time to the end, and each row's final-selection toggle and withdraw button. Those are small
forms (`POST /me/submissions/{id}/select`, `/unselect`, `/withdraw`) carrying the session's CSRF
token; they call the same service functions as the API's PUT/DELETE `.../selection` and
`.../withdraw`, so its 409 refusals are the page's messages, word for word.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app import challenge
from app.deps import IdPath, SessionDep
from app.disclosure import PARTICIPANT_DIGITS, shown
from app.errors import AppError
from app.leaderboard.service import HistoryPoint, score_history_plots
from app.models import Submission, Team
from app.phases import ladder, limits, selection
from app.phases.deps import ChallengeNow, Moment
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

from .phase_view import PhaseBox, SelectionBox, phase_box, selection_box

router = APIRouter(include_in_schema=False)

PAGE_SUBMISSIONS = 200
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
    """Everything /me shows: the team's submissions, its quota, the phase box and the final
    selection (block `phases` of the template)."""

    team: Team
    quota: QuotaOut
    quota_left: int | None
    resets_in: str
    submissions: list[dict[str, Any]]
    methods: list[str]
    history: dict[str, Markup]
    revealed: bool
    deadline: str | None = None
    phases: PhaseBox | None = None
    selection: SelectionBox | None = None
    pending: bool = False
    warnings: list[str] = field(default_factory=list)


def _rounded(value: float | None) -> float | None:
    return shown(value, full=False)


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
            "selection": sub.selection, "withdrawn": sub.withdrawn,
            "post_challenge": sub.post_challenge, "feedback": sub.feedback,
            "feedback_p_value": sub.feedback_p_value,
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
                auc=round(s.auc, PARTICIPANT_DIGITS), low=_rounded(s.ci_low),
                high=_rounded(s.ci_high),
                submission_id=sub.id))
    # Markup: the SVG builder escapes every piece of text itself.
    return {m: Markup(svg) for m, svg in score_history_plots(by_method).items()}


def me_view(request: Request, session: Session, team: Team, moment: Moment) -> MeView:
    settings = request.app.state.settings
    if moment.schedule.ladder_active(moment.now):
        # As the API's list does: a new score's ladder decision is taken before it is shown.
        ladder.ensure_decisions(session, settings, moment.schedule)
    subs = submissions.list_own(session, team, PAGE_SUBMISSIONS, 0, moment.now)
    left = limits.quota_left(session, settings, moment.schedule, team, moment.now)
    quota = QuotaOut(limit=left.daily_limit, used=left.daily_used,
                     resets_at=left.daily_resets_at, phase=left.phase,
                     total_limit=left.total_limit, total_used=left.total_used,
                     total_resets_at=left.total_resets_at)
    revealed = challenge.is_revealed(session)
    methods = sorted(set(session.execute(
        select(Submission.method).where(Submission.team_id == team.id)).scalars()))
    views = [submission_view(s) for s in subs]
    box = phase_box(moment, left)
    return MeView(
        team=team, quota=quota,
        quota_left=None if quota.limit is None else max(0, quota.limit - quota.used),
        resets_in=box.resets_in,
        submissions=views, methods=methods,
        history=_history(session, subs, challenge.board_split(revealed)), revealed=revealed,
        deadline=(f"{box.end}: in {box.end_in}" if box.end_in else
                  f"the challenge ended at {box.end}; entries now are post-challenge"
                  if box.ended else None),
        phases=box,
        selection=selection_box(session, team.id, moment, [v["country"] for v in views]),
        pending=any(v["state"] in ("queued", "running") for v in views))


def _rows(view: MeView, csrf: str) -> str:
    return render("_me_rows.html", view=view, task_names=TASK_NAMES, csrf=csrf)


def _phases(view: MeView) -> str:
    return render("_me_phases.html", view=view)


NOTICES = {
    "selected": "Submission {sid} now counts for the final ranking.",
    "unselected": "Submission {sid} no longer counts for the final ranking.",
    "withdrawn": "Submission {sid} is withdrawn from the boards (the organisers still see it).",
}


def _me_html(request: Request, session: Session, who: SignedIn, moment: Moment, *,
             notice: str | None = None, error: str | None = None) -> str:
    view = me_view(request, session, who.team, moment)
    session.commit()
    csrf = csrf_token(secret_of(request), who.cookie)
    return render("me.html", view=view, rows=Markup(_rows(view, csrf)), csrf=csrf,
                  phases_html=Markup(_phases(view)),
                  checkpoint_note=CHECKPOINT_NOTE, nav="me", notice=notice, error=error)


@router.get("/me", response_class=HTMLResponse)
def me_page(request: Request, session: SessionDep, moment: ChallengeNow) -> Response:
    who = signed_in(request, session)
    if who is None:
        return _to_login("signin")
    params = request.query_params
    sid = params.get("sid", "")
    notice = NOTICES.get(params.get("msg", ""))
    return _page(_me_html(request, session, who, moment,
                          notice=notice.format(sid=sid) if notice and sid.isdigit() else None,
                          error=ERRORS.get(params.get("err", ""))))


@router.get("/me/submissions.json")
def me_submissions(request: Request, session: SessionDep, moment: ChallengeNow) -> Response:
    """What the page polls: the team's submissions (states, attempts, problems, rounded
    scores, selection marks, withdrawals, ladder feedback), the rows' HTML rendered by the
    page's own template, the quota, the phase box and the selection per country."""
    who: SignedIn | None = signed_in(request, session)
    if who is None:
        return JSONResponse({"error": "unauthorized", "detail": "sign in at /login"},
                            status_code=401, headers={"Cache-Control": "no-store"})
    view = me_view(request, session, who.team, moment)
    session.commit()
    csrf = csrf_token(secret_of(request), who.cookie)
    assert view.phases is not None and view.selection is not None
    body = {"team": who.team.name, "pending": view.pending, "submissions": view.submissions,
            "quota": {"limit": view.quota.limit, "used": view.quota.used,
                      "left": view.quota_left, "resets_at": view.quota.resets_at.isoformat()},
            "phase": view.phases.as_json(), "selection": view.selection.as_json(),
            "methods": view.methods, "rows": _rows(view, csrf), "phases_html": _phases(view)}
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


# ------------------------------------------------------- final selection and withdraw forms


def _invalidate_board(request: Request) -> None:
    board = getattr(request.app.state, "leaderboard", None)
    if board is not None:
        board.invalidate()


def _refusal(exc: AppError) -> str:
    detail = exc.detail
    if isinstance(detail, dict) and isinstance(detail.get("message"), str):
        return str(detail["message"])
    return str(detail)


async def _team_action(request: Request, session: Session, moment: Moment,
                       submission_id: int, action: str) -> Response:
    """One final-selection or withdraw form: the same site, a signed-in team, the session's
    CSRF token, then the API's own service call. A refusal is shown on /me as the API words
    it, with the API's status."""
    if not same_origin(request):
        return RedirectResponse("/me?err=site", status_code=303)
    who = await run_in_threadpool(signed_in, request, session)
    if who is None:
        await run_in_threadpool(session.commit)
        return _to_login("signin")
    form = await small_form(request)
    if form is None or not check_csrf(secret_of(request), who.cookie,
                                      str(form.get("csrf", ""))):
        await run_in_threadpool(session.commit)
        return RedirectResponse("/me?err=csrf", status_code=303)
    team = who.team

    def act() -> None:
        if action == "select":
            selection.select_submission(session, team, submission_id, moment.schedule,
                                        moment.now)
        elif action == "unselect":
            selection.unselect_submission(session, team, submission_id, moment.schedule,
                                          moment.now)
        else:
            selection.withdraw_submission(session, team, submission_id)
        session.commit()

    try:
        await run_in_threadpool(act)
    except AppError as exc:
        await run_in_threadpool(session.rollback)
        message, status = _refusal(exc), exc.status
        html = await run_in_threadpool(lambda: _me_html(request, session, who, moment,
                                                        error=message))
        return _page(html, status)
    _invalidate_board(request)
    done = {"select": "selected", "unselect": "unselected", "withdraw": "withdrawn"}[action]
    return RedirectResponse(f"/me?msg={done}&sid={submission_id}#sub-{submission_id}",
                            status_code=303)


@router.post("/me/submissions/{submission_id}/select")
async def select_form(submission_id: IdPath, request: Request, session: SessionDep,
                      moment: ChallengeNow) -> Response:
    return await _team_action(request, session, moment, submission_id, "select")


@router.post("/me/submissions/{submission_id}/unselect")
async def unselect_form(submission_id: IdPath, request: Request, session: SessionDep,
                        moment: ChallengeNow) -> Response:
    return await _team_action(request, session, moment, submission_id, "unselect")


@router.post("/me/submissions/{submission_id}/withdraw")
async def withdraw_form(submission_id: IdPath, request: Request, session: SessionDep,
                        moment: ChallengeNow) -> Response:
    return await _team_action(request, session, moment, submission_id, "withdraw")
