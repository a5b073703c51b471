"""The organiser page: log in with an organiser token, then hide, disqualify, rescore, reveal.

Login exchanges the token (typed once into a password field) for a signed session cookie
(HttpOnly, SameSite=Strict, Secure outside development); the token itself is never stored in the
browser. Every form POST carries a CSRF token bound to the session. Forms are read only after the
session is checked, and then with tight limits (no files, few fields).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app import challenge
from app.auth import team_for_token
from app.deps import EnqueueDep, SessionDep
from app.errors import AppError
from app.jobs.context import Enqueue
from app.models import Submission, Team
from app.web.render import render
from app.web.session import (
    COOKIE_NAME,
    MAX_AGE_S,
    check_csrf,
    csrf_token,
    issue,
    organiser_from_request,
    secret_of,
)

from . import service

pages = APIRouter(include_in_schema=False)

MAX_FORM_FIELDS = 8
MAX_FORM_BYTES = 16 * 1024


async def small_form(request: Request,
                     max_bytes: int = MAX_FORM_BYTES) -> dict[str, str] | None:
    """The fields of a small url-encoded form, or None when the body is not one.

    The body is read with a byte cap whether or not it declares its length, so a huge or
    endless POST to these pages costs at most MAX_FORM_BYTES of memory.
    """
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        return None
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > max_bytes):
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            return None
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True,
                          max_num_fields=MAX_FORM_FIELDS, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        return None
    return dict(pairs)
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


def _secure(request: Request) -> bool:
    return str(getattr(request.app.state.settings, "env", "development")) == "production"


@pages.get("/organiser", response_class=HTMLResponse)
def organiser_page(request: Request, session: SessionDep) -> Response:
    who = organiser_from_request(request, session)
    message, error = _message(request)
    if who is None:
        return HTMLResponse(_render("organiser_login.html", error=error))
    team, cookie = who
    return HTMLResponse(_organiser_html(request, session, team, cookie, message, error))


def _organiser_html(request: Request, session: Session, team: Team, cookie: str,
                    message: str | None, error: str | None,
                    problems: list[tuple[str, str]] | None = None,
                    draft: str | None = None) -> str:
    rows = session.execute(
        select(Submission, Team.name).join(Team, Team.id == Submission.team_id)
        .order_by(Submission.id.desc()).limit(PAGE_SUBMISSIONS)
    ).all()
    state = challenge.state(session)
    audit = service.audit_entries(session, 50)
    session.commit()
    return _render(
        "organiser.html", team=team, csrf=csrf_token(secret_of(request), cookie),
        submissions=[{"s": s, "team": name} for s, name in rows], state=state,
        audit=audit, message=message, error=error, schedule_problems=problems or [],
        schedule_text=draft if draft is not None else (state.schedule_toml or ""),
    )


# The form is read on the event loop (async, capped); everything that touches the database runs
# in a worker thread, like every other route's.


@pages.post("/organiser/login")
async def login(request: Request, session: SessionDep) -> Response:
    form = await small_form(request)
    if form is None:
        return _redirect(err="form")
    token = str(form.get("token", "")).strip()
    team = await run_in_threadpool(team_for_token, session, token) if token else None
    if team is None or not team.is_organiser:
        # The same answer for unknown tokens and participants' tokens.
        return _redirect(err="token")
    team_id = team.id
    await run_in_threadpool(session.commit)
    response = _redirect(msg="login")
    response.set_cookie(COOKIE_NAME, issue(secret_of(request), team_id), max_age=MAX_AGE_S,
                        httponly=True, samesite="strict", secure=_secure(request),
                        path="/")
    return response


@pages.post("/organiser/logout")
async def logout(request: Request, session: SessionDep) -> Response:
    who = await run_in_threadpool(organiser_from_request, request, session)
    if who is not None:
        form = await small_form(request)
        if form is None:
            return _redirect(err="form")
        if not check_csrf(secret_of(request), who[1], str(form.get("csrf", ""))):
            return _redirect(err="csrf")
    response = _redirect(msg="logout")
    response.delete_cookie(COOKIE_NAME, path="/")
    return response


ACTIONS = ("hide", "unhide", "disqualify", "requalify", "rescore", "reveal", "unreveal")


@pages.post("/organiser/action")
async def action(request: Request, session: SessionDep, enqueue: EnqueueDep) -> Response:
    who = await run_in_threadpool(organiser_from_request, request, session)
    if who is None:
        return _redirect(err="login")
    team, cookie = who
    form = await small_form(request)
    if form is None:
        return _redirect(err="form")
    if not check_csrf(secret_of(request), cookie, str(form.get("csrf", ""))):
        return _redirect(err="csrf")
    return await run_in_threadpool(_act, request, session, enqueue, team, form)


def _act(request: Request, session: Session, enqueue: Enqueue, team: Team,
         form: dict[str, str]) -> Response:
    name = str(form.get("action", ""))
    reason = str(form.get("reason", "")) or None
    raw_id = str(form.get("submission_id", ""))
    if name not in ACTIONS:
        return _redirect(err="action")
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
        return HTMLResponse(_organiser_html(request, session, team, cookie, None,
                                            "The challenge file was refused; nothing changed.",
                                            exc.problems, text), status_code=422)
    session.commit()
    _invalidate(request)
    return _redirect(msg="challenge")
