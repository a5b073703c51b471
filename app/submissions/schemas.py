"""Response and request models of the submissions API (the OpenAPI reference)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

State = Literal["queued", "running", "scored", "failed"]


class SubmissionAccepted(BaseModel):
    id: int
    state: State
    duplicate: bool = Field(False, description="an earlier submission with this Idempotency-Key")


class ScoreOut(BaseModel):
    auc: float | None
    ci_low: float | None
    ci_high: float | None
    logloss: float | None
    n_pos: int
    n_neg: int
    reason: str | None = None


class SubmissionOut(BaseModel):
    id: int
    team: str
    country: str
    method: str
    state: State
    reason: str | None
    has_file: bool
    has_checkpoint: bool
    outputs: str | None
    file_format: str | None
    attempts: int
    waiting_since: datetime | None = Field(
        None, description="set while `running` with its worker's lease lapsed (the worker "
                          "died or stopped): waiting for a worker since then")
    hidden: bool
    disqualified: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    scorer_version: str | None = Field(None, description="the version the scores come from")
    scores: dict[str, dict[str, ScoreOut]] = Field(
        default_factory=dict,
        description="split → task → score; only the splits the caller may see")
    selection: Literal["manual", "auto"] | None = Field(
        None, description="counts for the final ranking: selected by the team, or at the lock")
    withdrawn: bool = False
    post_challenge: bool = Field(False, description="made after the end: never ranked finally")
    feedback: str | None = Field(None, description="ladder feedback: released, or not "
                                                   "significantly better than your best")
    feedback_p_value: float | None = None
    description: str | None = Field(None, description="the team's own note")
    output_warning: str | None = Field(
        None, description="a checkpoint whose outputs contradict the declared order")


class VerifyRequest(BaseModel):
    tolerance: float | None = Field(None, ge=0, le=1,
                                    description="largest |file AUC − checkpoint AUC| accepted")


class VerificationOut(BaseModel):
    id: int
    submission_id: int
    state: Literal["queued", "running", "done", "failed"]
    tolerance: float
    verified: bool | None
    results: dict[str, Any] | None
    torch_version: str | None
    device: str | None
    duration_s: float | None
    reason: str | None
    created_at: datetime
    finished_at: datetime | None


class QuotaOut(BaseModel):
    limit: int | None = Field(description="accepted submissions per UTC day; null: unlimited")
    used: int
    resets_at: datetime
    phase: str | None = Field(None, description="the phase open now; null: none is open")
    total_limit: int | None = Field(None, description="accepted submissions over the phase")
    total_used: int = 0
    total_resets_at: datetime | None = Field(None, description="when the next phase opens")
