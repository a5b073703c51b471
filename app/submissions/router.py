"""HTTP routes of the submissions domain. The router owns each request's transaction."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Query, Request
from starlette.concurrency import run_in_threadpool

from app.deps import (
    MAX_ID,
    CurrentTeam,
    EnqueueDep,
    IdPath,
    OrganiserTeam,
    SessionDep,
    SettingsDep,
)
from app.errors import NotFound, error_responses
from app.jobs.context import enqueue_or_leave_to_reaper
from app.models import Submission
from app.phases import ladder
from app.phases.deps import ChallengeNow
from app.phases.limits import check_kinds, open_phase
from app.storage import ArtifactStore, is_full
from app.submissions import budget, service
from app.submissions import repository as repo
from app.submissions.budget import UploadSlot
from app.submissions.schemas import (
    SubmissionAccepted,
    SubmissionOut,
    VerificationOut,
    VerifyRequest,
)
from app.submissions.upload import receive_upload, storage_full

router = APIRouter(tags=["submissions"])


_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["country", "method"],
                    "properties": {
                        "country": {"type": "string", "enum": ["NL", "ES", "FR", "US"]},
                        "method": {"type": "string", "maxLength": 100,
                                   "description": "the method's name on the leaderboard"},
                        "file": {"type": "string", "format": "binary",
                                 "description": "prediction file: CSV, gzip CSV or Parquet "
                                                "with row_id,ctr,cvr[,ctcvr] or row_id,ctr,ctcvr"},
                        "checkpoint": {"type": "string", "format": "binary",
                                       "description": "TorchScript archive (torch.jit.save)"},
                        "outputs": {"type": "string",
                                    "enum": ["ctr,cvr", "ctr,ctcvr", "ctr,cvr,ctcvr"],
                                    "default": "ctr,cvr",
                                    "description": "what the checkpoint's outputs are; "
                                                   "models of the multi-task library "
                                                   "return (pCTR, pCTCVR): ctr,ctcvr"},
                        "description": {"type": "string", "maxLength": 500,
                                        "description": "the team's own note"},
                    },
                },
                "encoding": {"file": {"contentType": "application/octet-stream"},
                             "checkpoint": {"contentType": "application/octet-stream"}},
            }
        },
    }
}


@router.post(
    "/submissions", status_code=202, response_model=SubmissionAccepted,
    summary="Upload a prediction file and/or a checkpoint",
    description="Multipart fields `country`, `method`, and `file` and/or `checkpoint` "
                "(+ `outputs`). The token is checked before the body is read; the body is "
                "capped at LB_MAX_UPLOAD_BYTES while it streams. A refused file costs no quota. "
                "An `Idempotency-Key` header makes retries safe: the same key from the same "
                "team returns the first submission. One upload in flight per team (429), a "
                "per-team storage budget (413) and a daily budget of run-time checkpoint "
                "failures (429 for checkpoint uploads): see docs/limits.md. Outside every open "
                "phase 403, a kind the phase doesn't take 422, a phase's limits 429: see "
                "docs/challenge-file.md.",
    responses=error_responses(400, 401, 403, 409, 413, 422, 429, 507),
    openapi_extra=_UPLOAD_BODY,
)
async def create_submission(
    request: Request, team: CurrentTeam, session: SessionDep, settings: SettingsDep,
    enqueue: EnqueueDep, moment: ChallengeNow, _slot: UploadSlot,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key",
                                                  max_length=200)] = None,
) -> SubmissionAccepted:
    key = service.check_idempotency_key(idempotency_key)
    # Refused before a byte of the body is read (and so before it costs anything).
    phase = open_phase(moment.schedule, moment.now)
    store = ArtifactStore.of(settings)
    upload = await receive_upload(request, store.tmp_dir, settings.max_upload_bytes)
    try:
        def find_earlier() -> Submission | None:
            try:
                return service.existing_for_key(session, team, key)
            finally:
                # Give the connection back before waiting for a thread to validate in: a
                # request holding one while every thread waits for one stalls the pool.
                session.commit()

        earlier = await run_in_threadpool(find_earlier)
        if earlier is not None:
            return SubmissionAccepted(id=earlier.id, state=earlier.state,  # type: ignore[arg-type]
                                      duplicate=True)
        check_kinds(phase, set(upload.files))
        await run_in_threadpool(budget.check_upload, session, settings, team, upload)
        checked = await run_in_threadpool(service.validate, settings, upload)

        def store_and_commit() -> service.Accepted:
            try:
                accepted = service.create(session, settings, team, upload, checked, key,
                                          schedule=moment.schedule, now=moment.now)
            except OSError as exc:
                # Rolled back by the session's owner; an artifact already moved into place is
                # whole (renamed, never partly written) and simply unreferenced.
                if is_full(exc):
                    raise storage_full(exc) from None
                raise
            session.commit()
            return accepted

        accepted = await run_in_threadpool(store_and_commit)
    finally:
        upload.cleanup()
    sub = accepted.submission
    if not accepted.duplicate:
        # A queue write (SQLite file or Redis) is blocking I/O: keep it off the event loop.
        await run_in_threadpool(enqueue_or_leave_to_reaper, enqueue, "score", sub.id)
    return SubmissionAccepted(id=sub.id, state=sub.state,  # type: ignore[arg-type]
                              duplicate=accepted.duplicate)


@router.get("/submissions", response_model=list[SubmissionOut],
            summary="The caller's submissions, newest first",
            responses=error_responses(401))
def list_submissions(team: CurrentTeam, session: SessionDep, settings: SettingsDep,
                     moment: ChallengeNow,
                     limit: Annotated[int, Query(ge=1, le=500)] = 100,
                     offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0) -> list[SubmissionOut]:
    if moment.schedule.ladder_active(moment.now):
        ladder.ensure_decisions(session, settings, moment.schedule)
    return service.list_own(session, team, limit, offset, moment.now)


@router.get("/submissions/{submission_id}", response_model=SubmissionOut,
            summary="One submission: state, reason, and the scores the caller may see",
            responses=error_responses(401, 404))
def get_submission(submission_id: IdPath, team: CurrentTeam, session: SessionDep,
                   settings: SettingsDep, moment: ChallengeNow) -> SubmissionOut:
    sub = service.visible_submission(session, team, submission_id)
    if moment.schedule.ladder_active(moment.now):
        ladder.ensure_decisions(session, settings, moment.schedule)
    return service.describe(session, team, [sub], moment.now)[0]


@router.post("/submissions/{submission_id}/verify", status_code=202,
             response_model=VerificationOut,
             summary="Organisers: run the attached checkpoint and compare with the file's AUCs",
             responses=error_responses(401, 403, 404, 409, 422))
def verify_submission(submission_id: IdPath, organiser: OrganiserTeam, session: SessionDep,
                      settings: SettingsDep, enqueue: EnqueueDep,
                      body: Annotated[VerifyRequest | None, Body()] = None) -> VerificationOut:
    ver = service.request_verification(session, settings, organiser, submission_id,
                                       body.tolerance if body else None)
    session.commit()
    enqueue_or_leave_to_reaper(enqueue, "verify", ver.id)
    session.refresh(ver)
    return service.verification_out(ver)


@router.get("/submissions/{submission_id}/verifications", response_model=list[VerificationOut],
            summary="Organisers: the verifications of a submission, newest first",
            responses=error_responses(401, 403, 404))
def list_verifications(submission_id: IdPath, organiser: OrganiserTeam,
                       session: SessionDep) -> list[VerificationOut]:
    if repo.get(session, submission_id) is None:
        raise NotFound(f"no submission {submission_id}")
    return [service.verification_out(v) for v in repo.verifications_of(session, submission_id)]
