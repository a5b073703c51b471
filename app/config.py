"""Service settings: one pydantic-settings object read from `LB_*` environment variables."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Public on purpose: a development default that production refuses (see `_refuse_insecure`).
DEV_SECRET_KEY = "dev-insecure-secret-key-change-me"


class Settings(BaseSettings):
    """Everything the API, the worker and the CLI need; one instance per process."""

    model_config = SettingsConfigDict(env_prefix="LB_", extra="ignore")

    env: str = Field(default="development",
                     description="`production` refuses insecure defaults")
    data_dir: Path = Field(default=Path("var"),
                           description="prepared test sets live in DATA_DIR/prepared/CC")
    database_url: str | None = Field(default=None,
                                     description="SQLAlchemy URL; default SQLite in data_dir")
    redis_url: str | None = Field(default=None,
                                  description="Huey on Redis; unset → SqliteHuey in data_dir")
    artifact_dir: Path | None = Field(default=None,
                                      description="upload store; default data_dir/artifacts")
    max_upload_bytes: int = Field(default=1 << 30, gt=0,
                                  description="cap on one upload request body")
    daily_quota: int = Field(default=5, ge=0,
                             description="accepted submissions per team per UTC day")
    lease_seconds: int = Field(default=300, gt=0, description="a worker's lease on a submission")
    heartbeat_seconds: float = Field(default=0.0, ge=0,
                                     description="lease renewal period; 0 → lease/3")
    max_attempts: int = Field(default=3, gt=0, description="worker attempts before `failed`")
    reaper_seconds: int = Field(default=30, gt=0,
                                description="period of the expired-lease reaper")
    requeue_seconds: int = Field(
        default=600, gt=0,
        description="a queued job no worker took this long is enqueued again (its enqueue "
                    "was lost, e.g. Redis was down at upload time)")
    verify_tolerance: float = Field(default=1e-4, ge=0,
                                    description="default |file AUC - checkpoint AUC|")
    checkpoint_zygote: bool = Field(
        default=True,
        description="checkpoint jobs fork from a pre-warmed sandbox parent (the zygote) that "
                    "the worker keeps, instead of starting a fresh interpreter and torch each; "
                    "off, or where no zygote can start: fresh processes")
    secret_key: SecretStr = Field(default=SecretStr(DEV_SECRET_KEY),
                                  description="signs organiser cookies")
    consumer_workers: int = Field(default=1, gt=0, description="Huey worker threads")
    leaderboard_check_seconds: float = Field(
        default=0.5, ge=0,
        description="cached leaderboard served without asking the DB for changes this long")
    auto_migrate: bool = Field(default=True,
                               description="`serve`/`worker` run `alembic upgrade head` first")

    @model_validator(mode="after")
    def _refuse_insecure(self) -> Settings:
        if self.env == "production":
            problems = []
            if self.secret_key.get_secret_value() == DEV_SECRET_KEY:
                problems.append("LB_SECRET_KEY is the development default")
            if len(self.secret_key.get_secret_value()) < 32:
                problems.append("LB_SECRET_KEY is shorter than 32 characters")
            if self.database_url is None or self.database_url.startswith("sqlite"):
                problems.append("LB_DATABASE_URL must name a server database (PostgreSQL)")
            if problems:
                raise ValueError("refusing to start in production: " + "; ".join(problems))
        return self

    @cached_property
    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'leaderboard.db').resolve()}"

    @cached_property
    def artifacts(self) -> Path:
        return (self.artifact_dir or self.data_dir / "artifacts").resolve()

    @property
    def prepared_root(self) -> Path:
        return self.data_dir / "prepared"

    @property
    def heartbeat_period(self) -> float:
        return self.heartbeat_seconds or self.lease_seconds / 3
