"""HTTP of the leaderboard: the JSON/CSV API under /api/v1 and the server-rendered pages."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, replace
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from app import challenge
from app.auth import team_for_token
from app.deps import IdPath, SessionDep, parse_id
from app.disclosure import full_precision, shown
from app.errors import AppError, NotFound, database_unreachable
from app.phases import ladder
from app.phases import store as phases_store
from app.phases.clock import SYSTEM_CLOCK
from app.phases.selection import ensure_locked
from app.web.session import csrf_token, is_organiser_request, secret_of, signed_in
from evaluator.schema import COUNTRIES, Country, Split, parse_country

from . import repository
from .export import board_csv, board_json
from .final import FinalBoard, final_board, final_csv, final_json
from .pages import country_page as render_country_page
from .pages import overall_page, render, roc_plots
from .service import Audience, Encoded, LeaderboardService
from .view import TASK_LABELS, Board, Ranking

api_router = APIRouter(tags=["leaderboard"])
pages_router = APIRouter(include_in_schema=False)

CSV_MEDIA_TYPE = "text/csv; charset=utf-8"


def get_service(request: Request) -> LeaderboardService:
    """One service (and cache) per application, made on first use."""
    state = request.app.state
    service: LeaderboardService | None = getattr(state, "leaderboard", None)
    if service is None:
        # The app's one clock, read at each build: a test or demo may set it after this.
        service = LeaderboardService(state.settings,
                                     lambda: getattr(state, "clock", SYSTEM_CLOCK).now())
        state.leaderboard = service
    return service


def _is_organiser(request: Request, session: Any) -> bool:
    """An organiser's page cookie or bearer token: they see full precision and every figure."""
    if is_organiser_request(request, session):
        return True
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        team = team_for_token(session, header[7:].strip())
        return team is not None and bool(team.is_organiser)
    return False


def _audience(request: Request, session: Any) -> Audience:
    return "organiser" if _is_organiser(request, session) else "public"


ServiceDep = Annotated[LeaderboardService, Depends(get_service)]
RankQuery = Annotated[Ranking, Query(alias="rank", description="ranking mode")]
FormatQuery = Annotated[Literal["json", "csv"], Query(alias="format")]


def country_or_none(value: str) -> Country | None:
    try:
        return parse_country(value)
    except ValueError:
        return None


def _json_bytes(data: dict[str, Any]) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


RENDERERS: dict[str, Callable[[Board], str | bytes]] = {
    "json": lambda board: _json_bytes(board_json(board)),
    "csv": board_csv,
    "overall": overall_page,
    "country": render_country_page,
}
MEDIA_TYPES = {"json": "application/json", "csv": CSV_MEDIA_TYPE,
               "overall": "text/html; charset=utf-8", "country": "text/html; charset=utf-8"}


# Sent with a board served from the cache while the database could not be reached.
STALE_HEADER = "X-Leaderboard-Stale"
STALE_NOTE = ('<p class="notice stale" role="status" id="stale-note">The database cannot be '
              "reached just now: this is the last leaderboard this server built, and it may "
              "be out of date.</p>")


def _stale_copy(encoded: Encoded, kind: str) -> Encoded:
    """The page with a visible note (JSON and CSV carry the header only)."""
    if kind not in ("overall", "country"):
        return encoded
    body = encoded.body.decode()
    marker = "<main>"
    at = body.find(marker)
    if at < 0:
        return encoded
    at += len(marker)
    return Encoded.of(body[:at] + STALE_NOTE + body[at:])


def _encoded_response(request: Request, encoded: Encoded, kind: str,
                      country: Country | None, stale: bool = False) -> Response:
    headers = {"ETag": encoded.etag, "Vary": "Accept-Encoding",
               "Cache-Control": "no-cache"}
    if stale:
        headers[STALE_HEADER] = "database unreachable; possibly stale"
        headers["Warning"] = '110 - "Response is Stale"'
    if kind == "csv":
        name = f"leaderboard-{(country or 'all').lower()}.csv"
        headers["Content-Disposition"] = f'attachment; filename="{name}"'
    if encoded.etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    if "gzip" in request.headers.get("accept-encoding", "").lower():
        headers["Content-Encoding"] = "gzip"
        return Response(encoded.gzipped, media_type=MEDIA_TYPES[kind], headers=headers)
    return Response(encoded.body, media_type=MEDIA_TYPES[kind], headers=headers)


def _lock_if_ended(session: Any, service: LeaderboardService) -> None:
    """The first reader after the end locks the selections (and reveals, when at_end). With the
    database unreachable the cached board is served as it is and the next reader locks."""
    try:
        ensure_locked(session, phases_store.load(session), service.now())
    except Exception as exc:
        if not database_unreachable(exc):
            raise
        session.rollback()


def _build_encoded(request: Request, kind: str, country: Country | None,
                   ranking: Ranking) -> tuple[Encoded, bool]:
    service = get_service(request)
    session = request.app.state.session_factory()
    try:
        audience = _audience(request, session) if _may_be_organiser(request) else "public"
        _lock_if_ended(session, service)
        encoded = service.rendered(session, kind, country, ranking, RENDERERS[kind], audience)
        stale = service.served_stale()
        return (_stale_copy(encoded, kind) if stale else encoded), stale
    finally:
        session.rollback()
        session.close()


def _may_be_organiser(request: Request) -> bool:
    return "authorization" in request.headers or bool(request.cookies)


async def _board_response(request: Request, kind: str, country: Country | None,
                          ranking: Ranking) -> Response:
    """Served straight from memory while the cache is fresh (no DB, no thread hop); otherwise
    the version check, and a rebuild when something changed, run in a worker thread."""
    service = get_service(request)
    cached: Encoded | None = None
    if not _may_be_organiser(request):
        cached = service.fresh(service.render_key(kind, country, ranking))
    if cached is not None:
        return _encoded_response(request, cached, kind, country)
    encoded, stale = await run_in_threadpool(_build_encoded, request, kind, country, ranking)
    return _encoded_response(request, encoded, kind, country, stale)


@api_router.get(
    "/leaderboard",
    summary="The overall leaderboard (12 columns) as JSON or CSV",
    responses={200: {"content": {"text/csv": {}}}},
)
async def leaderboard(request: Request, ranking: RankQuery = "mean_auc",
                      fmt: FormatQuery = "json") -> Response:
    return await _board_response(request, fmt, None, ranking)


def _final(request: Request, session: Any, ranking: Ranking) -> FinalBoard:
    service = get_service(request)
    now = service.now()
    schedule = phases_store.load(session)
    return final_board(service, session, schedule, now,
                       organiser=_is_organiser(request, session), ranking=ranking)


@api_router.get(
    "/leaderboard/final",
    summary="The final board (after the end): one row per team, its best private score per "
            "country among its selected submissions, frozen at the end",
    responses={200: {"content": {"text/csv": {}}},
               409: {"description": "challenge_not_ended (organisers see a preview)"}},
)
def final_leaderboard(request: Request, session: SessionDep, ranking: RankQuery = "mean_auc",
                      fmt: FormatQuery = "json") -> Response:
    final = _final(request, session, ranking)
    if fmt == "csv":
        return Response(final_csv(final), media_type=CSV_MEDIA_TYPE, headers={
            "Content-Disposition": 'attachment; filename="leaderboard-final.csv"'})
    return Response(_json_bytes(final_json(final)), media_type="application/json")


@api_router.get(
    "/leaderboard/{country}",
    summary="One country's leaderboard (CTR, CVR, CTCVR) as JSON or CSV",
    responses={200: {"content": {"text/csv": {}}}, 404: {"description": "unknown country"}},
)
async def country_leaderboard(country: str, request: Request, ranking: RankQuery = "mean_auc",
                              fmt: FormatQuery = "json") -> Response:
    code = country_or_none(country)
    if code is None:
        raise NotFound(f"unknown country {country!r}: expected one of {', '.join(COUNTRIES)}",
                       code="unknown_country")
    return await _board_response(request, fmt, code, ranking)


def _public_detail(session: Any, submission_id: int, request: Request, *,
                   own: bool = False) -> repository.SubmissionDetail | None:
    """The submission if the caller may see it: scored and not hidden, or an organiser; with
    `own`, also the signed-in team's own submission in any state."""
    detail = repository.submission_detail(session, submission_id)
    if detail is None:
        return None
    who = signed_in(request, session)
    if who is not None and (who.team.is_organiser or (own and who.team.id == detail.team_id)):
        return detail
    if detail.state not in repository.ON_BOARD_STATES or not detail.scores or detail.hidden:
        return None
    return detail


def _as_shown(detail: repository.SubmissionDetail,
              full: bool) -> repository.SubmissionDetail:
    """The detail with its log-losses as the viewer may see them (app/disclosure.py)."""
    if full:
        return detail
    scores = {split: {task: replace(r, logloss=shown(r.logloss, full=False))
                      for task, r in tasks.items()} for split, tasks in detail.scores.items()}
    return replace(detail, scores=scores)


@api_router.get(
    "/results/{submission_id}",
    summary="One scored submission's results on the splits that are public now",
    responses={404: {"description": "no such visible submission"}},
)
def submission_result(submission_id: IdPath, request: Request,
                      session: SessionDep) -> Response:
    detail = _public_detail(session, submission_id, request)
    if detail is None:
        raise NotFound(f"no visible scored submission {submission_id}")
    revealed = challenge.is_revealed(session)
    splits = challenge.splits_for(revealed)
    feedback = _for_participants(request, session, detail)
    detail = _as_shown(detail, full_precision(organiser=is_organiser_request(request, session),
                                              revealed=revealed))
    data = {
        "id": detail.id, "team": detail.team, "method": detail.method,
        "country": detail.country, "baseline": detail.is_baseline,
        "state": detail.state, "disqualified": detail.disqualified,
        "submitted_at": detail.submitted_at, "scorer_version": detail.scorer_version,
        "sha256": detail.sha256, "revealed": revealed,
        "scores": {split: {task: asdict(result) for task, result in tasks.items()}
                   for split, tasks in detail.scores.items() if split in splits},
    }
    if feedback is not None:
        data["feedback"] = feedback
    return Response(_json_bytes(data), media_type="application/json")


def _for_participants(request: Request, session: Any,
                      detail: repository.SubmissionDetail) -> str | None:
    """Participants' view of a submission during a scheduled challenge: public figures rounded,
    none at all of one the ladder withheld (its feedback returned instead). Changes `detail`."""
    if _is_organiser(request, session):
        return None
    service = get_service(request)
    now = service.now()
    schedule = phases_store.load(session)
    feedback: str | None = None
    if schedule.ladder_active(now):
        ladder.ensure_decisions(session, service.settings, schedule)
        decision = ladder.decisions(session, [detail.id]).get(detail.id)
        if decision is not None:
            feedback = ladder.message(decision)
            if not decision.released:
                detail.scores.pop("public", None)
    if schedule.rounds_for_participants(now) and "public" in detail.scores:
        detail.scores["public"] = {
            task: replace(r, auc=shown(r.auc, full=False), ci_low=shown(r.ci_low, full=False),
                          ci_high=shown(r.ci_high, full=False))
            for task, r in detail.scores["public"].items()}
    return feedback




# ---------------------------------------------------------------------------------- pages


@pages_router.get("/final", response_class=HTMLResponse)
def final_page(request: Request, session: SessionDep,
               ranking: RankQuery = "mean_auc") -> HTMLResponse:
    try:
        final = _final(request, session, ranking)
    except AppError as exc:
        message = exc.detail["message"] if isinstance(exc.detail, dict) else str(exc.detail)
        return _page(render("error.html", title="Not yet", message=message), exc.status)
    return _page(render("final.html", final=final, board=final.board, nav="final"))


def _page(html: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(html, status_code=status)


def _not_found(message: str) -> HTMLResponse:
    return _page(render("error.html", title="Not found", message=message), 404)


@pages_router.get("/", response_class=HTMLResponse)
async def overall(request: Request, ranking: RankQuery = "mean_auc") -> Response:
    return await _board_response(request, "overall", None, ranking)


@pages_router.get("/country/{country}", response_class=HTMLResponse)
async def country_page(country: str, request: Request,
                       ranking: RankQuery = "mean_auc") -> Response:
    code = country_or_none(country)
    if code is None:
        return _not_found(f"There is no country {country!r} in this challenge.")
    return await _board_response(request, "country", code, ranking)


@pages_router.get("/submissions/{submission_id}", response_class=HTMLResponse)
def submission_page(submission_id: str, request: Request, session: SessionDep,
                    service: ServiceDep) -> HTMLResponse:
    sid = parse_id(submission_id)
    if sid is None:
        return _not_found("There is no such submission.")
    detail = _public_detail(session, sid, request, own=True)
    if detail is None:
        return _not_found(f"No visible scored submission {submission_id}.")
    revealed = challenge.is_revealed(session)
    splits = challenge.splits_for(revealed)
    feedback = _for_participants(request, session, detail)
    split: Split = challenge.board_split(revealed)
    detail = _as_shown(detail, full_precision(organiser=is_organiser_request(request, session),
                                              revealed=revealed))
    scores = {s: tasks for s, tasks in detail.scores.items() if s in splits}
    curves = service.roc_curves(session, detail.id, split) if scores else None
    note = ("ROC curves need the submission's stored predictions and the prepared test set; "
            "they are not available for this submission.")
    aucs = {task: (r.auc, r.ci_low, r.ci_high)
            for task, r in scores.get(split, {}).items()}
    # The owning team, signed in, withdraws with its session (and the form's CSRF token)
    # instead of typing its token.
    who = signed_in(request, session)
    owner_csrf = csrf_token(secret_of(request), who.cookie) \
        if who is not None and who.team.id == detail.team_id else None
    html = render("submission.html", sub={**detail.__dict__, "scores": scores},
                  roc_plots=roc_plots(curves, aucs) if curves else [], roc_split=split,
                  roc_note=note, nav=detail.country, task_labels=TASK_LABELS,
                  feedback=feedback, owner_csrf=owner_csrf)
    return _page(html)
