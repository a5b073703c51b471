"""`alembic upgrade head` for a Settings, from code (CLI, serve and worker start, tests)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from app.config import Settings

ROOT = Path(__file__).resolve().parent.parent


def alembic_config(url: str) -> Config:
    # No alembic.ini needed: the scripts sit beside the packages (an editable install or a
    # source checkout; the Docker image installs editable for this).
    config = Config()
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.attributes["url"] = url
    return config


def upgrade(settings: Settings | str, revision: str = "head") -> None:
    url = settings if isinstance(settings, str) else settings.db_url
    command.upgrade(alembic_config(url), revision)
