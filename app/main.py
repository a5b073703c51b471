"""The application factory."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.orm import Session
from starlette.datastructures import Headers
from starlette.middleware.body_limit import RequestBodyLimitMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from app.config import Settings
from app.db import make_engine, session_factory
from app.deps import SessionDep
from app.errors import install_handlers
from app.jobs import liveness
from app.jobs.queue import Queue
from app.leaderboard.router import api_router as leaderboard_api
from app.leaderboard.router import pages_router as leaderboard_pages
from app.organiser.router import router as organiser_router
from app.participants.pages import router as participant_pages
from app.phases.clock import SYSTEM_CLOCK
from app.phases.router import pages as phases_pages
from app.phases.router import router as phases_router
from app.phases.store import load_file_at_start
from app.storage import ArtifactStore
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


class ConsumerHealth(BaseModel):
    name: str = Field(description="host:pid:token of the consumer process")
    role: str
    age_s: float = Field(description="seconds since its last heartbeat")
    alive: bool = Field(description="heartbeat younger than LB_PROCESS_STALE_SECONDS")


class JobCounts(BaseModel):
    queued: int = Field(description="rows `queued` in the database (every kind of job)")
    running: int = Field(description="rows `running` in the database")
    lapsed: int = Field(description="of those running, leases expired: waiting for a worker")


class DiskHealth(BaseModel):
    free_bytes: int | None = Field(description="free space under the artifact store")
    min_free_bytes: int = Field(description="LB_MIN_FREE_BYTES; below it, `degraded`")
    ok: bool


class Health(BaseModel):
    status: str = Field(description="`ok`, or `degraded` when the database or the queue fails, "
                                    "no queue consumer is alive, or the artifact store is "
                                    "nearly full. HTTP 503 only when the database is "
                                    "unreachable; otherwise 200 with this field")
    database: str
    queue: str = Field(description="`ok`, or the error met asking the queue (Redis down): "
                                   "uploads are still accepted and enqueued once it is back")
    queue_depth: int | None
    problems: list[str] = Field(default_factory=list, description="why `degraded`")
    jobs: JobCounts | None = Field(None, description="the database's count, beside the queue's")
    consumers_alive: int | None = Field(
        None, description="consumers with a fresh heartbeat; None with an immediate queue")
    consumers: list[ConsumerHealth] = Field(default_factory=list)
    disk: DiskHealth | None = None


log = logging.getLogger(__name__)


async def _sweep_tmp_periodically(settings: Settings) -> None:
    """Temp files no live upload owns (a crash mid-upload, a killed worker), every
    LB_TMP_SWEEP_SECONDS while the API runs, not only at start."""
    store = ArtifactStore.of(settings)
    while True:
        await asyncio.sleep(settings.tmp_sweep_seconds)
        try:
            removed = await asyncio.to_thread(store.sweep_orphans,
                                              settings.tmp_sweep_min_age_seconds)
        except OSError as exc:
            log.warning("sweeping temp files failed: %s", exc)
            continue
        if removed:
            log.warning("removed %d orphaned temp file(s) from %s", removed, store.tmp_dir)


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
        sweeper = asyncio.create_task(_sweep_tmp_periodically(settings))
        yield
        sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper
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
             summary="Liveness: database, queue, consumers' heartbeats, job counts, disk",
             responses={503: {"model": Health, "description": "the database is unreachable"}})
    def health(session: SessionDep) -> Any:
        return health_report(settings, session, jobs)

    return app


def health_report(settings: Settings, session: Session, jobs: Queue) -> Any:
    """Every check answers, whatever fails: health reports errors, it never raises them."""
    problems: list[str] = []
    database = "ok"
    counts: JobCounts | None = None
    alive: int | None = None
    beats: list[ConsumerHealth] = []
    try:
        session.execute(text("SELECT 1"))
        counts = JobCounts(**liveness.job_counts(session))
        if not jobs.huey.immediate:  # an immediate queue runs jobs in the API itself
            beats = [ConsumerHealth(**asdict(b)) for b in
                     liveness.consumers(session, settings.process_stale_seconds)]
            alive = sum(b.alive for b in beats)
            if alive == 0:
                problems.append("no queue consumer is alive: nothing scores submissions")
    except Exception as exc:  # reported, not raised: health must answer
        database = f"error: {type(exc).__name__}"
        problems.append("the database is unreachable")
    depth: int | None = None
    queue = "ok"
    try:
        depth = jobs.depth()
    except Exception as exc:  # reported, not raised, as above
        queue = f"error: {type(exc).__name__}"
        problems.append("the queue is unreachable")
    disk = _disk(settings)
    if not disk.ok:
        problems.append(f"the artifact store has {disk.free_bytes} bytes free, under "
                        f"{disk.min_free_bytes}")
    body = Health(status="degraded" if problems else "ok", database=database, queue=queue,
                  queue_depth=depth, problems=problems, jobs=counts, consumers_alive=alive,
                  consumers=beats, disk=disk)
    if database != "ok":
        return JSONResponse(body.model_dump(mode="json"), status_code=503)
    return body


def _disk(settings: Settings) -> DiskHealth:
    try:
        settings.artifacts.mkdir(parents=True, exist_ok=True)
        free: int | None = shutil.disk_usage(settings.artifacts).free
    except OSError:
        free = None
    return DiskHealth(free_bytes=free, min_free_bytes=settings.min_free_bytes,
                      ok=free is not None and free >= settings.min_free_bytes)


def _include_leaderboard(app: FastAPI) -> None:
    # The leaderboard helper's routers: JSON under the API prefix, pages at the root.
    app.include_router(leaderboard_api, prefix=API_PREFIX)
    app.include_router(leaderboard_pages)
