"""The organiser console: log in with an organiser token, then hide, disqualify, rescore,
reveal; create teams and tokens (a token is shown once) and revoke them; see every submission
with its failure reason, its scores on every split and its verification, the queue's depth and
the workers' last heartbeats.

Login exchanges the token (typed once into a password field) for a signed session cookie bound
to that token (app.web.session: revoking the token ends the session); the token itself is never
stored in the browser. Every form POST carries a CSRF token bound to the session and must come
from this site. Forms are read only after the session is checked, and then with tight limits
(no files, few fields).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app import challenge
from app.deps import EnqueueDep, SessionDep
from app.errors import AppError
from app.jobs import liveness
from app.jobs.context import Enqueue
from app.models import Team
from app.teams import service as teams
from app.web.forms import small_form
from app.web.render import render
from app.web.session import (
    authenticate,
    check_csrf,
    clear_session_cookie,
    csrf_token,
    organiser_from_request,
    same_origin,
    secret_of,
    set_session_cookie,
)

from . import service

pages = APIRouter(include_in_schema=False)

PAGE_SUBMISSIONS = 500


def _invalidate(request: Request) -> None:
    board = getattr(request.app.state, "leaderboard", None)
    if board is not None:
        board.invalidate()


def _render(template: str, **context: Any) -> str:
    return render(template, nav="organiser", **context)


# Messages shown after a redirect travel as codes, never as text in the URL: a link someone
# else made must not be able to put words on this page.
MESSAGES = {
    "login": "Logged in.",
    "logout": "Logged out.",
    "done": "Done: {action} of submission {id}.",
    "rescore": "{n} submissions queued for scoring again.",
    "reveal": "The private split is revealed: the leaderboard now ranks on it.",
    "unreveal": "The leaderboard shows the public split again.",
    "challenge": "The challenge file is stored: every process follows it from now on.",
    "revoked": "Token revoked: sessions signed in with it have ended.",
}
ERRORS = {
    "token": "That is not an organiser token.",
    "csrf": "The form expired; try again.",
    "login": "Log in first.",
    "action": "Unknown action.",
    "id": "Which submission? Give its number.",
    "notfound": "There is no such submission.",
    "reason": "Say why (at most 500 characters); a disqualification needs a reason.",
    "form": "The form could not be read.",
    "site": "That form was sent from another site; nothing was done.",
    "team": "No such team or token.",
}


def _redirect(*, msg: str | None = None, err: str | None = None,
              **numbers: int | str) -> RedirectResponse:
    params = {"msg": msg} if msg else {"err": err} if err else {}
    params.update({k: str(v) for k, v in numbers.items()})
    query = "&".join(f"{k}={quote(str(v))}" for k, v in params.items())
    return RedirectResponse("/organiser" + (f"?{query}" if query else ""), status_code=303)


def _message(request: Request) -> tuple[str | None, str | None]:
    query = request.query_params
    action = query.get("action", "")
    values = {"action": action if action in ACTIONS else "action",
              "id": query.get("id", "") if query.get("id", "").isdigit() else "?",
              "n": query.get("n", "") if query.get("n", "").isdigit() else "?"}
    msg = MESSAGES.get(query.get("msg", ""))
    err = ERRORS.get(query.get("err", ""))
    return (msg.format(**values) if msg else None), err


def _queue_depth(request: Request) -> str:
    try:
        return str(request.app.state.queue.depth())
    except Exception as exc:  # shown, not raised: the console must answer with Redis down
        return f"unknown ({type(exc).__name__})"


def _console(request: Request, session: Session, team: Team, cookie: str, *,
             message: str | None = None, error: str | None = None,
             issued: dict[str, Any] | None = None,
             schedule_problems: list[tuple[str, str]] | None = None,
             schedule_draft: str | None = None) -> HTMLResponse:
    state = challenge.state(session)
    settings = request.app.state.settings
    html = _render(
        "organiser.html", team=team, csrf=csrf_token(secret_of(request), cookie),
        submissions=service.console_submissions(session, PAGE_SUBMISSIONS), state=state,
        teams=service.teams_with_tokens(session), audit=service.audit_entries(session, 50),
        jobs=service.running_jobs(session, settings.lease_seconds),
        consumers=liveness.consumers(session, settings.process_stale_seconds),
        queue_depth=_queue_depth(request), message=message, error=error, issued=issued,
        schedule_problems=schedule_problems or [],
        schedule_text=schedule_draft if schedule_draft is not None
        else (state.schedule_toml or ""),
    )
    session.commit()
    # A page showing a token once must not be kept by the browser or a proxy.
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


@pages.get("/organiser", response_class=HTMLResponse)
def organiser_page(request: Request, session: SessionDep) -> Response:
    who = organiser_from_request(request, session)
    message, error = _message(request)
    if who is None:
        return HTMLResponse(_render("organiser_login.html", error=error))
    team, cookie = who
    return _console(request, session, team, cookie, message=message, error=error)


# The form is read on the event loop (async, capped); everything that touches the database runs
# in a worker thread, like every other route's.


@pages.post("/organiser/login")
async def login(request: Request, session: SessionDep) -> Response:
    if not same_origin(request):
        return _redirect(err="site")
    form = await small_form(request)
    if form is None:
        return _redirect(err="form")
    token = str(form.get("token", "")).strip()
    found = await run_in_threadpool(authenticate, session, token) if token else None
    if found is None or not found[0].is_organiser:
        # The same answer for unknown tokens and participants' tokens.
        return _redirect(err="token")
    team_id, token_id = found[0].id, found[1]
    await run_in_threadpool(session.commit)
    response = _redirect(msg="login")
    set_session_cookie(request, response, team_id, token_id)
    return response


@pages.post("/organiser/logout")
async def logout(request: Request, session: SessionDep) -> Response:
    if not same_origin(request):
        return _redirect(err="site")
    who = await run_in_threadpool(organiser_from_request, request, session)
    if who is not None:
        form = await small_form(request)
        if form is None:
            return _redirect(err="form")
        if not check_csrf(secret_of(request), who[1], str(form.get("csrf", ""))):
            return _redirect(err="csrf")
    response = _redirect(msg="logout")
    clear_session_cookie(request, response)
    return response


ACTIONS = ("hide", "unhide", "disqualify", "requalify", "rescore", "reveal", "unreveal",
           "create_team", "create_token", "revoke_token")


@pages.post("/organiser/action")
async def action(request: Request, session: SessionDep, enqueue: EnqueueDep) -> Response:
    if not same_origin(request):
        return _redirect(err="site")
    who = await run_in_threadpool(organiser_from_request, request, session)
    if who is None:
        return _redirect(err="login")
    team, cookie = who
    form = await small_form(request)
    if form is None:
        return _redirect(err="form")
    if not check_csrf(secret_of(request), cookie, str(form.get("csrf", ""))):
        return _redirect(err="csrf")
    return await run_in_threadpool(_act, request, session, enqueue, team, cookie, form)


def _form_id(form: dict[str, str], name: str) -> int | None:
    raw = str(form.get(name, ""))
    if not (raw.isascii() and raw.isdigit()) or not 0 < int(raw) < 2**31:
        return None
    return int(raw)


def _teams_action(request: Request, session: Session, team: Team, cookie: str, name: str,
                  form: dict[str, str]) -> Response:
    """Create a team, issue a token, revoke a token. A new token is shown on the page this
    POST answers with, once: it is never put in a URL and never stored."""
    if name == "create_team":
        created, issued = teams.create_team(
            session, team, str(form.get("name", "")),
            organiser=form.get("is_organiser") == "on", baseline=form.get("is_baseline") == "on")
        session.commit()
        return _console(request, session, team, cookie,
                        issued={"team": created.name, "token": issued.secret},
                        message=f"Team {created.name} created.")
    if name == "create_token":
        team_id = _form_id(form, "team_id")
        if team_id is None:
            return _redirect(err="team")
        issued = teams.create_token(session, team, team_id)
        owner = session.get(Team, team_id)
        session.commit()
        return _console(request, session, team, cookie,
                        issued={"team": owner.name if owner else "?", "token": issued.secret},
                        message="Token issued.")
    token_id = _form_id(form, "token_id")
    if token_id is None:
        return _redirect(err="team")
    teams.revoke_token(session, team, token_id)
    session.commit()
    return _redirect(msg="revoked")


def _act(request: Request, session: Session, enqueue: Enqueue, team: Team, cookie: str,
         form: dict[str, str]) -> Response:
    name = str(form.get("action", ""))
    reason = str(form.get("reason", "")) or None
    raw_id = str(form.get("submission_id", ""))
    if name not in ACTIONS:
        return _redirect(err="action")
    if name in ("create_team", "create_token", "revoke_token"):
        try:
            return _teams_action(request, session, team, cookie, name, form)
        except AppError as exc:
            session.rollback()
            if exc.status == 404:
                return _redirect(err="team")
            return _console(request, session, team, cookie,
                            error=exc.detail if isinstance(exc.detail, str) else str(exc))
    try:
        if name in ("hide", "unhide", "disqualify", "requalify"):
            if not (raw_id.isascii() and raw_id.isdigit()) or not 0 < int(raw_id) < 2**31:
                return _redirect(err="id")
            sid = int(raw_id)
            if name in ("hide", "unhide"):
                service.set_hidden(session, team, sid, name == "hide", reason)
            else:
                service.set_disqualified(session, team, sid, name == "disqualify", reason)
            session.commit()
            _invalidate(request)
            return _redirect(msg="done", action=name, id=sid)
        if name == "rescore":
            plan = service.plan_rescore(session, team)
            session.commit()
            service.enqueue_all(plan, enqueue)
            return _redirect(msg="rescore", n=len(plan.submission_ids))
        service.set_revealed(session, team, name == "reveal")
        session.commit()
        _invalidate(request)
        return _redirect(msg=name)
    except AppError as exc:
        session.rollback()
        return _redirect(err="notfound" if exc.status == 404 else "reason")


CHALLENGE_FORM_BYTES = 64 * 1024


@pages.post("/organiser/challenge")
async def challenge_file(request: Request, session: SessionDep) -> Response:
    """Store the challenge file typed into the page (empty: no schedule). A refused file
    comes back in the form with every problem listed, nothing stored."""
    who = await run_in_threadpool(organiser_from_request, request, session)
    if who is None:
        return _redirect(err="login")
    team, cookie = who
    form = await small_form(request, CHALLENGE_FORM_BYTES)
    if form is None:
        return _redirect(err="form")
    if not check_csrf(secret_of(request), cookie, str(form.get("csrf", ""))):
        return _redirect(err="csrf")
    return await run_in_threadpool(_set_challenge, request, session, team, cookie,
                                   str(form.get("toml", "")))


def _set_challenge(request: Request, session: Session, team: Team, cookie: str,
                   text: str) -> Response:
    from app.phases import store
    from app.phases.schedule import ScheduleError

    try:
        store.set_schedule(session, team, text if text.strip() else None, "organiser page")
    except ScheduleError as exc:
        session.rollback()
        response = _console(request, session, team, cookie,
                            error="The challenge file was refused; nothing changed.",
                            schedule_problems=exc.problems, schedule_draft=text)
        response.status_code = 422
        return response
    session.commit()
    _invalidate(request)
    return _redirect(msg="challenge")
