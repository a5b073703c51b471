"""Submission use cases. They flush; the router commits, then enqueues (never before)."""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app import audit, challenge
from app.config import Settings
from app.disclosure import full_precision, shown
from app.errors import Conflict, Invalid, NotFound
from app.jobs.liveness import waiting_since
from app.models import Score, Submission, Team, Verification
from app.phases import ladder, limits, store
from app.phases.schedule import Schedule
from app.phases.selection import selection_marks
from app.storage import ArtifactStore
from app.submissions import repository as repo
from app.submissions.schemas import QuotaOut, ScoreOut, SubmissionOut, VerificationOut
from app.submissions.upload import Upload
from evaluator.checkpoint import CheckpointRejected, check_archive, parse_outputs
from evaluator.data.prepared import PreparedData, PreparedDataError
from evaluator.predictions import PredictionFileError, parse_prediction_file
from evaluator.schema import TASKS, parse_country

MAX_METHOD_CHARS = 100
MAX_DESCRIPTION_CHARS = 500
MAX_IDEMPOTENCY_KEY = 200
_KEY_RE = re.compile(r"^[A-Za-z0-9._:\-]{1,200}$")


@dataclass(frozen=True)
class Accepted:
    submission: Submission
    duplicate: bool


def start_of_day(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def quota_exempt(team: Team) -> bool:
    # Organisers enter baselines and test runs; they are not competing for the test set.
    return team.is_organiser or team.is_baseline


def quota(session: Session, settings: Settings, team: Team, *,
          schedule: Schedule | None = None, now: datetime | None = None) -> QuotaOut:
    """The team's use of the phase open now: daily (and total, when the phase has one)."""
    left = limits.quota_left(session, settings, schedule or Schedule.open_ended(), team,
                             now or datetime.now(UTC))
    return QuotaOut(limit=left.daily_limit, used=left.daily_used,
                    resets_at=left.daily_resets_at, phase=left.phase,
                    total_limit=left.total_limit, total_used=left.total_used,
                    total_resets_at=left.total_resets_at)


def clean_method(value: str) -> str:
    text = " ".join(value.split())
    if not text:
        raise Invalid("method: a non-empty method name is required", code="invalid_field")
    if len(text) > MAX_METHOD_CHARS:
        raise Invalid(f"method: at most {MAX_METHOD_CHARS} characters, got {len(text)}",
                      code="invalid_field")
    if any(unicodedata.category(ch).startswith("C") for ch in text):
        raise Invalid("method: control characters are not allowed", code="invalid_field")
    return text


def clean_description(value: str | None) -> str | None:
    if value is None:
        return None
    text = " ".join("".join(" " if unicodedata.category(ch).startswith("C") else ch
                            for ch in value).split())
    if len(text) > MAX_DESCRIPTION_CHARS:
        raise Invalid(f"description: at most {MAX_DESCRIPTION_CHARS} characters, got "
                      f"{len(text)}", code="invalid_field")
    return text or None


def check_idempotency_key(key: str | None) -> str | None:
    if key is None:
        return None
    if not _KEY_RE.match(key):
        raise Invalid("Idempotency-Key: 1 to 200 characters of A-Z a-z 0-9 . _ : -",
                      code="invalid_header")
    return key


def existing_for_key(session: Session, team: Team, key: str | None) -> Submission | None:
    return repo.by_idempotency_key(session, team.id, key) if key else None


def _problems(exc: PredictionFileError) -> list[dict[str, Any]]:
    return [{"message": p.message, "row": p.row, "column": p.column, "value": p.value,
             "count": p.count} for p in exc.problems]


def _file_format(path: Path) -> str:
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic == b"PAR1":
        return "parquet"
    if magic[:2] == b"\x1f\x8b":
        return "csv.gz"
    return "csv"


@dataclass(frozen=True)
class Checked:
    country: str
    method: str
    outputs: str | None
    file_format: str | None
    description: str | None = None


def validate(settings: Settings, upload: Upload) -> Checked:
    """Every check that needs no database: fields, the prediction file, the checkpoint archive.

    Slow (the file is parsed in full): the router runs it in a worker thread.
    """
    fields = upload.fields
    missing = [name for name in ("country", "method") if not fields.get(name, "").strip()]
    if missing:
        raise Invalid(f"missing form field(s): {', '.join(missing)}", code="missing_field")
    try:
        country = parse_country(fields["country"])
    except ValueError as exc:
        raise Invalid(f"country: {exc}", code="invalid_field") from None
    method = clean_method(fields["method"])
    description = clean_description(fields.get("description"))
    prediction_file = upload.files.get("file")
    checkpoint = upload.files.get("checkpoint")
    if prediction_file is None and checkpoint is None:
        raise Invalid("send a prediction file (`file`), a checkpoint (`checkpoint`), or both",
                      code="missing_field")
    outputs: str | None = None
    if "outputs" in fields and checkpoint is None:
        raise Invalid("outputs: only meaningful with a checkpoint", code="invalid_field")
    if checkpoint is not None:
        try:
            outputs = parse_outputs(fields.get("outputs") or "ctr,cvr")
        except ValueError as exc:
            raise Invalid(f"outputs: {exc}", code="invalid_field") from None
    try:
        data = PreparedData.open(settings.prepared_root / country)
    except PreparedDataError:
        raise Conflict(f"country {country}: this server has no prepared test set for it; "
                       "ask the organisers", code="no_test_set") from None
    file_format = None
    if prediction_file is not None:
        if prediction_file.size == 0:
            raise Invalid("file: the prediction file is empty", code="invalid_file")
        try:
            parse_prediction_file(prediction_file.path, data.n_rows)
        except PredictionFileError as exc:
            raise Invalid({"message": f"file: {exc.summary}", "problems": _problems(exc)},
                          code="invalid_file") from None
        file_format = _file_format(prediction_file.path)
    if checkpoint is not None:
        try:
            check_archive(checkpoint.path)
        except CheckpointRejected as exc:
            raise Invalid(f"checkpoint: {exc}", code="invalid_checkpoint") from None
    return Checked(country=country, method=method, outputs=outputs, file_format=file_format,
                   description=description)


def create(session: Session, settings: Settings, team: Team, upload: Upload, checked: Checked,
           idempotency_key: str | None, *, schedule: Schedule | None = None,
           now: datetime | None = None) -> Accepted:
    """Store the artifacts and insert the queued row, the quota checked in the same
    transaction. The caller commits and then enqueues.

    The files are flushed to disk before the team's lock is taken (on SQLite, the database's
    write lock): under the lock only renames happen."""
    store = ArtifactStore.of(settings)
    for item in upload.files.values():
        store.sync(item.path)
    repo.lock_team(session, team.id)
    earlier = existing_for_key(session, team, idempotency_key)
    if earlier is not None:
        return Accepted(earlier, duplicate=True)
    # The app's clock stamps the row: phases and limits are judged on one time line.
    now = now or datetime.now(UTC)
    if not quota_exempt(team):
        limits.check_limits(session, settings, schedule or Schedule.open_ended(), team, now)
    hashes: dict[str, str] = {}
    for name, item in upload.files.items():
        store.adopt(item.path, item.sha256, synced=True)
        hashes[name] = item.sha256
    submission = Submission(
        team_id=team.id, country=checked.country, method=checked.method, state="queued",
        file_sha256=hashes.get("file"), checkpoint_sha256=hashes.get("checkpoint"),
        outputs=checked.outputs, file_format=checked.file_format,
        idempotency_key=idempotency_key, attempts=0, hidden=False, disqualified=False,
        created_at=now,
        description=checked.description,
    )
    session.add(submission)
    try:
        session.flush()
    except IntegrityError:
        # Only the (team, idempotency key) constraint can fire here: a concurrent twin won.
        session.rollback()
        earlier = existing_for_key(session, team, idempotency_key)
        if earlier is None:
            raise
        return Accepted(earlier, duplicate=True)
    return Accepted(submission, duplicate=False)


def _scores_by_submission(scores: Sequence[Score], splits: tuple[str, ...], full: bool = True
                          ) -> dict[int, tuple[str | None, dict[str, dict[str, ScoreOut]]]]:
    by_version: dict[int, dict[str, list[Score]]] = defaultdict(lambda: defaultdict(list))
    for s in scores:
        by_version[s.submission_id][s.scorer_version].append(s)
    out: dict[int, tuple[str | None, dict[str, dict[str, ScoreOut]]]] = {}
    for sid, versions in by_version.items():
        version = challenge.shown_version(versions)
        assert version is not None, "a submission here has at least one score"
        table: dict[str, dict[str, ScoreOut]] = {}
        for split in splits:
            row = {s.task: s for s in versions[version] if s.split == split}
            table[split] = {
                task: ScoreOut(auc=r.auc, ci_low=r.ci_low, ci_high=r.ci_high,
                               logloss=shown(r.logloss, full=full), n_pos=r.n_pos,
                               n_neg=r.n_neg, reason=r.reason)
                for task in TASKS if (r := row.get(task)) is not None
            }
        out[sid] = (version, table)
    return out


def _round_public(table: dict[str, dict[str, ScoreOut]]) -> None:
    for task, score in table.get("public", {}).items():
        table["public"][task] = score.model_copy(update={
            k: shown(v, full=False)
            for k, v in (("auc", score.auc), ("ci_low", score.ci_low),
                         ("ci_high", score.ci_high))})


def describe(session: Session, team: Team, submissions: Sequence[Submission],
             now: datetime | None = None) -> list[SubmissionOut]:
    """The caller's view of submissions. Participants, during a scheduled challenge, get public
    figures rounded and, under ladder feedback, none of a submission the ladder withheld."""
    now = now or datetime.now(UTC)
    schedule = store.load(session)
    splits = challenge.visible_splits(session, team)
    scored = [s.id for s in submissions if s.state == "scored"]
    full = full_precision(organiser=team.is_organiser, revealed=challenge.is_revealed(session))
    scores = _scores_by_submission(repo.scores_of(session, scored), splits, full)
    names = repo.team_names(session, [s.team_id for s in submissions])
    marks = selection_marks(session, [s.id for s in submissions])
    participant = not team.is_organiser
    decided = ladder.decisions(session, scored) if schedule.feedback == "ladder" else {}
    result = []
    for s in submissions:
        version, table = scores.get(s.id, (None, {}))
        decision = decided.get(s.id)
        feedback = ladder.message(decision) if decision is not None else None
        if participant and schedule.ladder_active(now) and decision is not None \
                and not decision.released:
            table = {k: v for k, v in table.items() if k != "public"}
        if participant and schedule.rounds_for_participants(now):
            _round_public(table)
        result.append(SubmissionOut(
            id=s.id, team=names.get(s.team_id, ""), country=s.country, method=s.method,
            state=s.state,  # type: ignore[arg-type]
            reason=s.reason, has_file=s.file_sha256 is not None,
            has_checkpoint=s.checkpoint_sha256 is not None, outputs=s.outputs,
            file_format=s.file_format, attempts=s.attempts,
            waiting_since=waiting_since(s.state, s.lease_expires_at), hidden=s.hidden,
            disqualified=s.disqualified, created_at=s.created_at, started_at=s.started_at,
            finished_at=s.finished_at, scorer_version=version, scores=table,
            selection=marks.get(s.id),  # type: ignore[arg-type]
            withdrawn=bool(s.withdrawn), post_challenge=schedule.is_post_challenge(s.created_at),
            feedback=feedback,
            feedback_p_value=decision.p_value if decision is not None else None,
            description=s.description, output_warning=s.output_warning))
    return result


def visible_submission(session: Session, team: Team, submission_id: int) -> Submission:
    """The submission if the caller may see it; another team's is 'not found', not 'forbidden',
    so ids reveal nothing."""
    sub = repo.get(session, submission_id)
    if sub is None or (sub.team_id != team.id and not team.is_organiser):
        raise NotFound(f"no submission {submission_id}")
    return sub


def list_own(session: Session, team: Team, limit: int, offset: int,
             now: datetime | None = None) -> list[SubmissionOut]:
    return describe(session, team, repo.of_team(session, team.id, limit, offset), now)


def request_verification(session: Session, settings: Settings, actor: Team, submission_id: int,
                         tolerance: float | None) -> Verification:
    sub = repo.get(session, submission_id)
    if sub is None:
        raise NotFound(f"no submission {submission_id}")
    if sub.checkpoint_sha256 is None:
        raise Conflict(f"submission {submission_id} has no checkpoint to run",
                       code="no_checkpoint")
    if sub.file_sha256 is None:
        raise Conflict(f"submission {submission_id} has no prediction file to compare with",
                       code="no_file")
    if sub.state != "scored":
        raise Conflict(f"submission {submission_id} is {sub.state}; verify it once scored",
                       code="not_scored")
    ver = Verification(submission_id=sub.id, state="queued",
                       tolerance=settings.verify_tolerance if tolerance is None else tolerance,
                       requested_by=actor.id)
    session.add(ver)
    session.flush()
    audit.record(session, actor, "verify", "submission", sub.id,
                 {"verification_id": ver.id, "tolerance": ver.tolerance})
    return ver


def verification_out(ver: Verification) -> VerificationOut:
    return VerificationOut(
        id=ver.id, submission_id=ver.submission_id,
        state=ver.state,  # type: ignore[arg-type]
        tolerance=ver.tolerance, verified=ver.verified, results=ver.results,
        torch_version=ver.torch_version, device=ver.device, duration_s=ver.duration_s,
        reason=ver.reason, created_at=ver.created_at, finished_at=ver.finished_at)
