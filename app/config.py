"""Service settings: one pydantic-settings object read from `LB_*` environment variables."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# With no LB_SECRET_KEY, a random key is made on first use and kept here (mode 600) in the data
# folder: never a fixed string, which anyone could read in the source and forge cookies with.
SECRET_KEY_FILE = "secret_key"


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
    lease_seconds: int = Field(default=60, gt=0, description="a worker's lease on a submission")
    heartbeat_seconds: float = Field(default=0.0, ge=0,
                                     description="lease renewal period; 0 → lease/4")
    max_attempts: int = Field(default=3, gt=0, description="worker attempts before `failed`")
    reaper_seconds: int = Field(default=30, gt=0,
                                description="period of the expired-lease reaper")
    requeue_seconds: int = Field(
        default=600, gt=0,
        description="a queued job no worker took this long is enqueued again (its enqueue "
                    "was lost, e.g. Redis was down at upload time)")
    verify_tolerance: float = Field(
        default=1e-4, ge=0,
        description="default largest |file - checkpoint| prediction on any row (verification)")
    checkpoint_zygote: bool = Field(
        default=True,
        description="checkpoint jobs fork from a pre-warmed sandbox parent (the zygote) that "
                    "the worker keeps, instead of starting a fresh interpreter and torch each; "
                    "off, or where no zygote can start: fresh processes")
    secret_key: SecretStr | None = Field(
        default=None, description="signs browser session cookies; unset → a random key kept "
                                  "in data_dir/secret_key (mode 600), made on first use")
    consumer_workers: int = Field(default=1, gt=0, description="Huey worker threads")
    leaderboard_check_seconds: float = Field(
        default=0.5, ge=0,
        description="cached leaderboard served without asking the DB for changes this long")
    fair_share: bool = Field(
        default=True,
        description="a worker takes the scoring job of the team with the fewest running jobs "
                    "that ran least recently, not the one its message names "
                    "(app/jobs/fairshare.py)")
    checkpoint_wall_base_seconds: float = Field(
        default=60.0, gt=0, description="a checkpoint run's wall limit: this, plus ...")
    checkpoint_wall_seconds_per_million_rows: float = Field(
        default=120.0, ge=0, description="... this per million rows of the test set")
    checkpoint_wall_max_seconds: float = Field(
        default=1800.0, gt=0, description="... and never more than this (docs/checkpoints.md)")
    team_storage_bytes: int = Field(
        default=10 << 30, gt=0,
        description="per-team budget of stored artifact bytes (files, checkpoints, stored "
                    "predictions); an upload past it gets 413")
    daily_checkpoint_failures: int = Field(
        default=3, ge=0,
        description="run-time checkpoint failures per team per UTC day before checkpoint "
                    "uploads get 429")
    failed_artifact_retention_seconds: int = Field(
        default=7 * 86400, ge=0,
        description="artifacts of failed submissions are deleted this long after they failed "
                    "(the row and its reason stay)")
    retention_sweep_seconds: int = Field(
        default=3600, gt=0, description="how often the worker runs the retention sweep")
    challenge_file: Path | None = Field(
        default=None,
        description="TOML challenge file (phases, limits, selection, feedback); loaded into "
                    "the DB when the API starts; unset: open for ever with LB_DAILY_QUOTA")
    auto_migrate: bool = Field(default=True,
                               description="`serve`/`worker` run `alembic upgrade head` first")
    # Liveness (docs/liveness.md).
    process_beat_seconds: float = Field(
        default=5.0, gt=0, description="period of each consumer's heartbeat row")
    process_stale_seconds: float = Field(
        default=20.0, gt=0, description="a consumer whose heartbeat is older is taken for dead")
    queue_check_seconds: float = Field(
        default=2.0, gt=0,
        description="period of the check that enqueues again `queued` rows missing from the "
                    "queue (Redis restarted empty, an enqueue that failed)")
    queue_settle_seconds: float = Field(
        default=5.0, ge=0,
        description="a row enqueued less than this long ago is left alone by that check")
    enqueue_timeout_seconds: float = Field(
        default=1.0, gt=0, description="Redis socket timeout of the API's enqueue")
    stop_grace_seconds: float = Field(
        default=60.0, ge=0,
        description="on SIGTERM/SIGINT a consumer finishes its jobs this long, then puts them "
                    "back without spending an attempt")
    retry_backoff_seconds: float = Field(
        default=5.0, ge=0, description="first delay before a failed job runs again; doubles")
    retry_backoff_max_seconds: float = Field(default=300.0, ge=0,
                                             description="cap on that delay")
    no_space_retry_seconds: float = Field(
        default=30.0, gt=0,
        description="a job that met a full disk waits this long, then runs again (no attempt)")
    min_free_bytes: int = Field(
        default=256 << 20, ge=0,
        description="`/health` is degraded while the artifact store has less free space")
    tmp_sweep_seconds: float = Field(
        default=300.0, gt=0, description="period of the API's sweep of orphaned temp files")
    tmp_sweep_min_age_seconds: float = Field(
        default=60.0, ge=0, description="temp files younger than this are never swept")
    db_retry_after_seconds: int = Field(
        default=5, gt=0, description="`Retry-After` of the 503 sent while the DB is down")

    @model_validator(mode="after")
    def _refuse_insecure(self) -> Settings:
        if self.env == "production":
            problems = []
            if (self.secret_key is not None
                    and len(self.secret_key.get_secret_value()) < 32):
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
        return self.heartbeat_seconds or self.lease_seconds / 4
