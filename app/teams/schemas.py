"""Models of the teams API."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from app.submissions.schemas import QuotaOut


class TeamOut(BaseModel):
    id: int
    name: str
    is_organiser: bool
    is_baseline: bool
    created_at: datetime


class SelectedOut(BaseModel):
    submission_id: int
    country: str
    auto: bool = Field(description="chosen at the lock (the team had selected fewer)")


class MeOut(TeamOut):
    quota: QuotaOut
    selections: list[SelectedOut] = Field(default_factory=list,
                                          description="submissions counting for the final "
                                                      "ranking")
    selection_limit: int = Field(2, description="per country")
    selections_locked: bool = False


class TeamCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    is_organiser: bool = False
    is_baseline: bool = False


class TokenOut(BaseModel):
    id: int
    team_id: int
    prefix: str
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


class IssuedTokenOut(BaseModel):
    token: str = Field(description="shown once: store it now")
    token_info: TokenOut


class TeamCreated(BaseModel):
    team: TeamOut
    token: str = Field(description="shown once: store it now")
