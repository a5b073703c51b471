"""Settings: defaults that run on one machine, and production refusing insecure ones."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from app.config import Settings

STRONG = "s" * 40


def test_defaults_put_the_database_and_queue_under_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.db_url == f"sqlite:///{(tmp_path / 'leaderboard.db').resolve()}"
    assert settings.artifacts == (tmp_path / "artifacts").resolve()
    assert settings.redis_url is None


def test_settings_come_from_lb_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LB_MAX_UPLOAD_BYTES", "1234")
    monkeypatch.setenv("LB_DAILY_QUOTA", "9")
    settings = Settings()
    assert (settings.max_upload_bytes, settings.daily_quota) == (1234, 9)


def test_production_refuses_a_short_secret_key() -> None:
    with pytest.raises(ValidationError, match="LB_SECRET_KEY is shorter than 32"):
        Settings(env="production", secret_key=SecretStr("short"),
                 database_url="postgresql+psycopg://db/lb")


def test_no_fixed_secret_key_is_built_in() -> None:
    # Unset, the key is made at random per data folder (app.web.session), never a constant.
    assert Settings().secret_key is None
    assert Settings(env="production",
                    database_url="postgresql+psycopg://db/lb").secret_key is None


def test_production_refuses_sqlite() -> None:
    with pytest.raises(ValidationError, match="PostgreSQL"):
        Settings(env="production", secret_key=SecretStr(STRONG))


def test_production_accepts_a_strong_key_and_a_server_database() -> None:
    settings = Settings(env="production", secret_key=SecretStr(STRONG),
                        database_url="postgresql+psycopg://db/lb")
    assert settings.env == "production"


def test_heartbeat_defaults_to_a_quarter_of_the_lease() -> None:
    assert Settings(lease_seconds=80).heartbeat_period == 20
