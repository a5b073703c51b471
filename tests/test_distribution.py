"""The installed distribution is whole: a non-editable install migrates from the migrations it
ships, and serves its templates."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # The source copied first: a build in the checkout would leave build/ and *.egg-info there.
    source = out / "src"
    files = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others",
                            "--exclude-standard"], check=True, capture_output=True).stdout
    for name in filter(None, files.decode().split("\0")):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            (source / name).write_bytes((ROOT / name).read_bytes())
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(out), str(source)], check=True, capture_output=True)
    (built,) = out.glob("*.whl")
    return built


def test_the_wheel_ships_the_migrations_and_the_page_assets(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    versions = sorted(p.name for p in (ROOT / "migrations" / "versions").glob("*.py"))
    assert {"migrations/env.py", "migrations/script.py.mako"} <= names
    assert {f"migrations/versions/{v}" for v in versions} <= names
    assert "app/web/templates/base.html" in names
    assert "app/web/static/style.css" in names
    assert "app/reference/challenge_baselines.csv" in names


def test_a_non_editable_install_migrates_a_fresh_database(wheel: Path, tmp_path: Path) -> None:
    unpacked = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(unpacked)
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    # Run away from the checkout, the unpacked wheel first on the path: nothing but the
    # distribution's own files can be found.
    script = ("import sys; sys.path.insert(0, sys.argv[1]); import app, migrations; "
              "assert app.__file__.startswith(sys.argv[1]), app.__file__; "
              "assert migrations.__file__.startswith(sys.argv[1]), migrations.__file__; "
              "from app.db import upgrade; upgrade(sys.argv[2]); "
              "from sqlalchemy import create_engine, text; "
              "e = create_engine(sys.argv[2]); c = e.connect(); "
              "print(c.execute(text('SELECT count(*) FROM challenge_state')).scalar())")
    done = subprocess.run([sys.executable, "-c", script, str(unpacked), url], cwd=tmp_path,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1"
