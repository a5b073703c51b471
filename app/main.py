"""The application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import text
from starlette.datastructures import Headers
from starlette.middleware.body_limit import RequestBodyLimitMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from app.config import Settings
from app.db import make_engine, session_factory
from app.deps import SessionDep
from app.errors import install_handlers
from app.jobs.queue import Queue
from app.leaderboard.router import api_router as leaderboard_api
from app.leaderboard.router import pages_router as leaderboard_pages
from app.organiser.router import router as organiser_router
from app.participants.pages import router as participant_pages
from app.phases.clock import SYSTEM_CLOCK
from app.phases.router import pages as phases_pages
from app.phases.router import router as phases_router
from app.phases.store import load_file_at_start
from app.submissions.pages import BROWSER_UPLOAD_PATH
from app.submissions.pages import router as upload_page
from app.submissions.router import router as submissions_router
from app.teams.router import router as teams_router
from app.web.docs import router as docs_router
from app.web.router import router as web_router

API_PREFIX = "/api/v1"
# FastAPI reads and parses a JSON body before any dependency runs, so before the token is
# checked: uncapped, one anonymous request could make the server hold gigabytes. The largest
# legitimate body is an organiser's rescore list (100,000 ids, ~1.1 MB).
MAX_REQUEST_BODY = 2 << 20
# The uploads (the API's and the browser form's) stream their bodies after authentication,
# under their own cap (LB_MAX_UPLOAD_BYTES).
STREAMED_UPLOADS = {("POST", API_PREFIX + "/submissions"), ("POST", BROWSER_UPLOAD_PATH)}


class BodyCap:
    """413 for a request body over MAX_REQUEST_BODY, with or without Content-Length, except
    the streamed upload's."""

    def __init__(self, app: ASGIApp, limit: int = MAX_REQUEST_BODY) -> None:
        self.app = app
        self.limit = limit
        self.capped = RequestBodyLimitMiddleware(app, max_body_size=limit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path, root = scope.get("path", ""), scope.get("root_path", "")
        if root and path.startswith(root):  # served under a prefix (a proxy's root path)
            path = path[len(root):]
        if scope["type"] != "http" or (scope["method"], path) in STREAMED_UPLOADS:
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.limit:
            # Refused before a byte of the body is read.
            response = JSONResponse({"error": "payload_too_large",
                                     "detail": f"request body over {self.limit} bytes"}, 413)
            await response(scope, receive, send)
            return
        # Without a length, the count stops the read at the cap (the 413 comes from the app's
        # HTTPException handler).
        await self.capped(scope, receive, send)


class Health(BaseModel):
    status: str = Field(description="`ok`, or `degraded` when the database or the queue fails")
    database: str
    queue: str = Field(description="`ok`, or the error met asking the queue (Redis down): "
                                   "uploads are still accepted and enqueued once it is back")
    queue_depth: int | None


def create_app(settings: Settings | None = None, queue: Queue | None = None) -> FastAPI:
    """The API and the pages. Jobs go to `queue`, or to a queue of the app's own settings."""
    settings = settings or Settings()
    engine = make_engine(settings)
    owned_queue = queue is None
    jobs = queue if queue is not None else Queue(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if settings.challenge_file is not None:
            # A bad file stops the start here, with every problem named.
            load_file_at_start(settings.challenge_file, _app.state.session_factory)
        yield
        engine.dispose()
        if owned_queue:
            jobs.close()

    app = FastAPI(
        lifespan=lifespan,
        # Served by app.web.docs from packaged assets: the defaults load them from a CDN.
        docs_url=None, redoc_url=None,
        title="MTME challenge leaderboard",
        version="1.0",
        description="Submit predictions or checkpoints for the Multi-Task Multi-Expert "
                    "Challenge (AliExpress CTR/CVR/CTCVR) and read the leaderboard. "
                    "Authenticate with `Authorization: Bearer <team token>`. Errors are "
                    '`{"error": CODE, "detail": …}`.',
    )
    app.state.settings = settings
    app.state.queue = jobs
    app.state.engine = engine
    app.state.session_factory = session_factory(engine)
    app.state.clock = SYSTEM_CLOCK  # every phase decision reads this one clock
    install_handlers(app)
    app.add_middleware(BodyCap)
    app.include_router(submissions_router, prefix=API_PREFIX)
    app.include_router(teams_router, prefix=API_PREFIX)
    app.include_router(phases_router, prefix=API_PREFIX)
    _include_leaderboard(app)
    app.include_router(organiser_router)
    app.include_router(phases_pages)
    app.include_router(participant_pages)
    app.include_router(upload_page)
    app.include_router(web_router)
    app.include_router(docs_router)

    @app.get("/health", response_model=Health, tags=["service"],
             summary="Liveness, database reachability and the queue's depth",
             responses={503: {"model": Health, "description": "the database is unreachable"}})
    def health(session: SessionDep) -> Any:
        database = "ok"
        try:
            session.execute(text("SELECT 1"))
        except Exception as exc:  # reported, not raised: health must answer
            database = f"error: {type(exc).__name__}"
        depth: int | None = None
        queue = "ok"
        try:
            depth = jobs.depth()
        except Exception as exc:  # reported, not raised, as above
            queue = f"error: {type(exc).__name__}"
        healthy = database == "ok" and queue == "ok"
        body = Health(status="ok" if healthy else "degraded", database=database, queue=queue,
                      queue_depth=depth)
        if database != "ok":
            return JSONResponse(body.model_dump(), status_code=503)
        return body

    return app


def _include_leaderboard(app: FastAPI) -> None:
    # The leaderboard helper's routers: JSON under the API prefix, pages at the root.
    app.include_router(leaderboard_api, prefix=API_PREFIX)
    app.include_router(leaderboard_pages)
