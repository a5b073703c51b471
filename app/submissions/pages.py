"""The browser's upload: `POST /me/submissions`, the form on /me sent by XMLHttpRequest.

The same streamed, capped, validated path as `POST /api/v1/submissions` (it calls that route),
authenticated by the session cookie instead of a bearer token. Because a cookie rides along
with any request the browser makes, the request must also carry the session's CSRF token in
`X-CSRF-Token` (a header, which no cross-site form can set) and must not come from another
site. Answers are the API's JSON, so the page lists a refused file's problems itself.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from app.deps import EnqueueDep, SessionDep, SettingsDep
from app.phases.deps import ChallengeNow
from app.web.session import (
    CSRF_HEADER,
    SignedIn,
    check_csrf,
    same_origin,
    secret_of,
    signed_in,
)

from .budget import hold_upload_slot
from .router import create_submission

router = APIRouter(include_in_schema=False)

BROWSER_UPLOAD_PATH = "/me/submissions"


@router.post(BROWSER_UPLOAD_PATH)
async def browser_upload(request: Request, session: SessionDep, settings: SettingsDep,
                         enqueue: EnqueueDep, moment: ChallengeNow) -> Response:
    if not same_origin(request):
        return JSONResponse({"error": "cross_site", "detail": "the upload came from another "
                             "site; nothing was stored"}, status_code=403)

    def who_and_commit() -> SignedIn | None:
        try:
            return signed_in(request, session)
        finally:
            session.commit()

    who = await run_in_threadpool(who_and_commit)
    if who is None:
        return JSONResponse({"error": "unauthorized", "detail": "sign in at /login first"},
                            status_code=401)
    if not check_csrf(secret_of(request), who.cookie, request.headers.get(CSRF_HEADER)):
        return JSONResponse({"error": "csrf", "detail": "the page's form token is missing or "
                             "expired; reload the page"}, status_code=403)
    async with hold_upload_slot(request, who.team, session, settings):
        accepted = await create_submission(
            request, who.team, session, settings, enqueue, moment, None,
            idempotency_key=request.headers.get("idempotency-key"))
    return JSONResponse(accepted.model_dump(), status_code=202)
