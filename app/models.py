"""The service's tables. SQL lives in repositories; these are the typed mappings."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.sql.expression import false
from sqlalchemy.types import TypeDecorator

from app.db import Base

SUBMISSION_STATES = ("queued", "running", "scored", "failed")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        # A naive value is taken to be UTC already (every writer here uses UTC).
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        # SQLite compares the stored text: keep one format (naive UTC) for every value.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Team(Base):
    __tablename__ = "team"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    is_organiser: Mapped[bool] = mapped_column(Boolean, default=False)
    is_baseline: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    tokens: Mapped[list[ApiToken]] = relationship(back_populates="team")


class ApiToken(Base):
    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("team.id", ondelete="CASCADE"), index=True)
    prefix: Mapped[str] = mapped_column(String(16), index=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    team: Mapped[Team] = relationship(back_populates="tokens")


class Submission(Base):
    __tablename__ = "submission"
    __table_args__ = (
        UniqueConstraint("team_id", "idempotency_key", name="uq_submission_team_idempotency"),
        Index("ix_submission_state_lease", "state", "lease_expires_at"),
        Index("ix_submission_team_created", "team_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("team.id"), index=True)
    country: Mapped[str] = mapped_column(String(2), index=True)
    method: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(16), default="queued")
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    file_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    checkpoint_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    outputs: Mapped[str | None] = mapped_column(String(32), default=None)
    file_format: Mapped[str | None] = mapped_column(String(16), default=None)
    predictions_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(100), default=None)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime,
                                                              default=None)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), default=None)
    hidden: Mapped[bool] = mapped_column(Boolean, default=False)
    disqualified: Mapped[bool] = mapped_column(Boolean, default=False)
    withdrawn: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # The participant's own note, shown on its pages; and, for a checkpoint, a warning when its
    # outputs' order contradicts what it declared (pCTCVR can never exceed pCTR).
    description: Mapped[str | None] = mapped_column(Text, default=None)
    output_warning: Mapped[str | None] = mapped_column(Text, default=None)

    team: Mapped[Team] = relationship()
    scores: Mapped[list[Score]] = relationship(back_populates="submission",
                                               order_by="Score.id")


class Score(Base):
    __tablename__ = "score"
    __table_args__ = (
        UniqueConstraint("submission_id", "scorer_version", "split", "task",
                         name="uq_score_submission_version_split_task"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submission.id", ondelete="CASCADE"),
                                               index=True)
    scorer_version: Mapped[str] = mapped_column(String(32))
    split: Mapped[str] = mapped_column(String(16))
    task: Mapped[str] = mapped_column(String(8))
    auc: Mapped[float | None] = mapped_column(Float, default=None)
    ci_low: Mapped[float | None] = mapped_column(Float, default=None)
    ci_high: Mapped[float | None] = mapped_column(Float, default=None)
    logloss: Mapped[float | None] = mapped_column(Float, default=None)
    n_pos: Mapped[int] = mapped_column(Integer, default=0)
    n_neg: Mapped[int] = mapped_column(Integer, default=0)
    reason: Mapped[str | None] = mapped_column(Text, default=None)

    submission: Mapped[Submission] = relationship(back_populates="scores")


class Verification(Base):
    __tablename__ = "verification"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submission.id", ondelete="CASCADE"),
                                               index=True)
    state: Mapped[str] = mapped_column(String(16), default="queued")
    tolerance: Mapped[float] = mapped_column(Float)
    # {"ctr": {"file_auc": x, "ckpt_auc": y, "diff": d}, ...}
    results: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    verified: Mapped[bool | None] = mapped_column(Boolean, default=None)
    torch_version: Mapped[str | None] = mapped_column(String(64), default=None)
    device: Mapped[str | None] = mapped_column(String(200), default=None)
    duration_s: Mapped[float | None] = mapped_column(Float, default=None)
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    requested_by: Mapped[int | None] = mapped_column(ForeignKey("team.id"), default=None)
    # The same lease as a submission's: a worker that dies mid-run is noticed by the reaper.
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    lease_owner: Mapped[str | None] = mapped_column(String(100), default=None)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class AuditLog(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    actor_team_id: Mapped[int | None] = mapped_column(ForeignKey("team.id"), default=None,
                                                      index=True)
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[int | None] = mapped_column(Integer, default=None)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ChallengeState(Base):
    """A single row: whether the private split has been revealed."""

    __tablename__ = "challenge_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    revealed: Mapped[bool] = mapped_column(Boolean, default=False)
    revealed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # The challenge file's text (app.phases.schedule); None: no schedule, open for ever.
    schedule_toml: Mapped[str | None] = mapped_column(Text, default=None)
    # When the selections locked and the final board was frozen (the end, first noticed).
    locked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class Rescore(Base):
    """An organiser's request to score a scored submission again under a scorer version.

    Recorded before it is enqueued, with the same lease as a submission's, so the reaper
    finishes it even when the enqueue was lost and a duplicate delivery does not run it twice.
    """

    __tablename__ = "rescore"
    __table_args__ = (Index("ix_rescore_state_lease", "state", "lease_expires_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submission.id", ondelete="CASCADE"),
                                               index=True)
    scorer_version: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16), default="queued")
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(100), default=None)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class Selection(Base):
    """A submission a team chose to count for the final ranking (or one chosen for it at the
    lock, `auto`)."""

    __tablename__ = "selection"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    submission_id: Mapped[int] = mapped_column(
        ForeignKey("submission.id", ondelete="CASCADE"), unique=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("team.id"), index=True)
    country: Mapped[str] = mapped_column(String(2))
    auto: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LadderDecision(Base):
    """Whether a submission's public figure was released under ladder feedback: decided once,
    in the order submissions are seen scored, against the team's shown best at that time."""

    __tablename__ = "ladder_decision"

    submission_id: Mapped[int] = mapped_column(
        ForeignKey("submission.id", ondelete="CASCADE"), primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("team.id"), index=True)
    country: Mapped[str] = mapped_column(String(2))
    released: Mapped[bool] = mapped_column(Boolean)
    p_value: Mapped[float | None] = mapped_column(Float, default=None)
    best_id: Mapped[int | None] = mapped_column(Integer, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class FinalEntry(Base):
    """The final board as published at the lock: per team and country, the selected entry with
    the best private score and its figures then. A later rescore never changes these rows."""

    __tablename__ = "final_entry"
    __table_args__ = (UniqueConstraint("team_id", "country", name="uq_final_entry_team_country"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("team.id"))
    country: Mapped[str] = mapped_column(String(2))
    submission_id: Mapped[int] = mapped_column(ForeignKey("submission.id", ondelete="CASCADE"))
    method: Mapped[str] = mapped_column(String(100))
    auto: Mapped[bool] = mapped_column(Boolean, default=False)
    scorer_version: Mapped[str] = mapped_column(String(32))
    # {"ctr": {"auc": x, "ci_low": l, "ci_high": h, "n_pos": p, "n_neg": n}, ...}
    scores: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
class ProcessHeartbeat(Base):
    """One row per live queue consumer (`serve`'s or a `worker` anywhere), beaten every
    LB_PROCESS_BEAT_SECONDS and removed on a clean stop; `/health` reads their ages. In the
    database, not a file, so consumers on other machines are seen too."""

    __tablename__ = "process_heartbeat"

    # host:pid:token — also the prefix of every lease owner the process writes.
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    role: Mapped[str] = mapped_column(String(16), default="consumer")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    beat_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
