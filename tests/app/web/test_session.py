"""Signed organiser session cookies and CSRF tokens (app/organiser/session.py)."""

from __future__ import annotations

from app.web.session import MAX_AGE_S, check_csrf, csrf_token, issue, verify

SECRET = "s3cret-for-tests"


def test_issued_cookie_verifies_to_its_team() -> None:
    session = verify(SECRET, issue(SECRET, 42, now=1000), now=1010)
    assert session is not None
    assert session.team_id == 42


def test_cookie_signed_with_another_secret_is_refused() -> None:
    assert verify(SECRET, issue("other", 42, now=1000), now=1010) is None


def test_edited_team_id_is_refused() -> None:
    value = issue(SECRET, 42, now=1000)
    forged = "1" + value[2:]
    assert verify(SECRET, forged, now=1010) is None


def test_expired_cookie_is_refused() -> None:
    assert verify(SECRET, issue(SECRET, 42, now=1000), now=1001 + MAX_AGE_S) is None


def test_malformed_cookies_are_refused() -> None:
    for value in ("", "abc", "1.2", "1.2.3.4", "x.1.ab", "1." + "9" * 300 + ".ab"):
        assert verify(SECRET, value) is None


def test_csrf_token_belongs_to_its_session() -> None:
    a = issue(SECRET, 1, now=1000)
    b = issue(SECRET, 2, now=1000)
    assert check_csrf(SECRET, a, csrf_token(SECRET, a))
    assert not check_csrf(SECRET, a, csrf_token(SECRET, b))
    assert not check_csrf(SECRET, a, None)
