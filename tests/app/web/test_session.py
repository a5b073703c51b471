"""Signed browser session cookies, CSRF tokens and the cookie secret (app/web/session.py)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from app.web.session import (
    MAX_AGE_S,
    check_csrf,
    csrf_token,
    issue,
    load_or_create_secret,
    verify,
)

SECRET = "s3cret-for-tests"


def test_issued_cookie_verifies_to_its_team_and_token() -> None:
    session = verify(SECRET, issue(SECRET, 42, 7, now=1000), now=1010)
    assert session is not None
    assert (session.team_id, session.token_id) == (42, 7)


def test_cookie_signed_with_another_secret_is_refused() -> None:
    assert verify(SECRET, issue("other", 42, 7, now=1000), now=1010) is None


def test_edited_team_or_token_id_is_refused() -> None:
    value = issue(SECRET, 42, 7, now=1000)
    assert verify(SECRET, "1" + value[2:], now=1010) is None
    team, _token, rest = value.split(".", 2)
    assert verify(SECRET, f"{team}.8.{rest}", now=1010) is None


def test_expired_cookie_is_refused() -> None:
    assert verify(SECRET, issue(SECRET, 42, 7, now=1000), now=1001 + MAX_AGE_S) is None


def test_malformed_cookies_are_refused() -> None:
    for value in ("", "abc", "1.2", "1.2.3", "1.2.3.4.5", "x.1.2.ab",
                  "1.2." + "9" * 300 + ".ab", "１.2.3.ab"):
        assert verify(SECRET, value) is None


def test_csrf_token_belongs_to_its_session() -> None:
    a = issue(SECRET, 1, 1, now=1000)
    b = issue(SECRET, 2, 2, now=1000)
    assert check_csrf(SECRET, a, csrf_token(SECRET, a))
    assert not check_csrf(SECRET, a, csrf_token(SECRET, b))
    assert not check_csrf(SECRET, a, None)


def test_without_a_set_secret_a_random_one_is_kept_in_the_data_folder(tmp_path: Path) -> None:
    first = load_or_create_secret(tmp_path)
    path = tmp_path / "secret_key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) >= 32
    # The same key on the next start (sessions survive a restart) ...
    assert load_or_create_secret(tmp_path) == first
    # ... and another folder (another deployment) gets another one: nothing fixed.
    other = tmp_path / "other"
    assert load_or_create_secret(other) != first


def test_a_secret_file_others_can_read_is_made_private(tmp_path: Path) -> None:
    path = tmp_path / "secret_key"
    path.write_text("k" * 40)
    path.chmod(0o644)
    assert load_or_create_secret(tmp_path) == "k" * 40
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_short_secret_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "secret_key").write_text("short")
    with pytest.raises(RuntimeError, match="shorter than 32"):
        load_or_create_secret(tmp_path)


def test_processes_starting_together_agree_on_one_secret(tmp_path: Path) -> None:
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    with context.Pool(4) as pool:
        keys = pool.map(load_or_create_secret, [tmp_path] * 8)
    assert len(set(keys)) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["secret_key"]  # no temporary file left
