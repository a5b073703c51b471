"""The browser's sign-in session: a signed cookie bound to the API token it was made with, a
CSRF token derived from it, and a same-origin check on every form POST.

The browser holds `lb_session=<team id>.<token id>.<issued at>.<signature>` (HttpOnly,
SameSite=Strict, Secure behind https). The signature is an HMAC of the rest under the service's
secret, so the cookie cannot be forged or extended. Every request also looks the token up: a
revoked token, a token of another team or a deleted team ends the session at once, for
participants and organisers alike.

The secret is LB_SECRET_KEY, or else a random key made on first use and kept in the data folder
with mode 600: there is no fixed fallback string that anyone could sign cookies with.

POST forms carry a CSRF token, an HMAC of the cookie value (a form field `csrf`, or the header
`X-CSRF-Token` for the upload's XMLHttpRequest). SameSite already keeps other sites' requests from
carrying the cookie; the token covers old browsers, and the Origin / Sec-Fetch-Site check also
refuses cross-site posts to forms that run before a session exists (the sign-in form).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import stat
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy.orm import Session as DbSession

from app.auth import team_for_token, token_row
from app.config import SECRET_KEY_FILE, Settings
from app.models import ApiToken, Team

COOKIE_NAME = "lb_session"
CSRF_HEADER = "x-csrf-token"
MAX_AGE_S = 12 * 3600
MAX_COOKIE_CHARS = 300
SECRET_BYTES = 48

_secret_lock = threading.Lock()


@dataclass(frozen=True)
class Session:
    team_id: int
    token_id: int
    issued_at: int


@dataclass(frozen=True)
class SignedIn:
    """A live browser session: its team, the token it was made with, and its cookie value."""

    team: Team
    token_id: int
    cookie: str


def _mac(secret: str, message: str) -> str:
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def issue(secret: str, team_id: int, token_id: int, *, now: float | None = None) -> str:
    issued = int(time.time() if now is None else now)
    body = f"{team_id}.{token_id}.{issued}"
    return f"{body}.{_mac(secret, 'session|' + body)}"


def verify(secret: str, value: str | None, *, now: float | None = None) -> Session | None:
    """The session a cookie value stands for, or None when it is malformed, forged or old.
    Whether its token is still live is the caller's check (`signed_in`)."""
    if not value or len(value) > MAX_COOKIE_CHARS:
        return None
    parts = value.split(".")
    if len(parts) != 4 or not all(p.isascii() and p.isdigit() for p in parts[:3]):
        return None
    if any(len(p) > 12 for p in parts[:3]):
        return None
    body = ".".join(parts[:3])
    if not hmac.compare_digest(parts[3], _mac(secret, "session|" + body)):
        return None
    issued = int(parts[2])
    current = time.time() if now is None else now
    if not issued <= current + 60 or current - issued > MAX_AGE_S:
        return None
    return Session(team_id=int(parts[0]), token_id=int(parts[1]), issued_at=issued)


def csrf_token(secret: str, cookie_value: str) -> str:
    return _mac(secret, "csrf|" + cookie_value)


def check_csrf(secret: str, cookie_value: str, token: str | None) -> bool:
    return token is not None and hmac.compare_digest(token, csrf_token(secret, cookie_value))


# ------------------------------------------------------------------------------------ secret


def load_or_create_secret(data_dir: Path) -> str:
    """The key kept in `data_dir/secret_key`, made (random, mode 600) when there is none.

    The new key is written to a private temporary file and linked into place, so two processes
    starting together agree on one key and neither ever reads a half-written file."""
    path = Path(data_dir) / SECRET_KEY_FILE
    with _secret_lock:
        try:
            return _read_secret(path)
        except FileNotFoundError:
            pass
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".secret-")  # mode 600
        try:
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_urlsafe(SECRET_BYTES) + "\n")
                out.flush()
                os.fsync(out.fileno())
            with contextlib.suppress(FileExistsError):  # another process was first: use its key
                os.link(tmp, path)
        finally:
            os.unlink(tmp)
        return _read_secret(path)


def _read_secret(path: Path) -> str:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        # A key others could read signs cookies others could forge: take the access back.
        os.chmod(path, 0o600)
    value = path.read_text().strip()
    if len(value) < 32:
        raise RuntimeError(f"{path} holds a key shorter than 32 characters; delete it to have "
                           "a new one made, or set LB_SECRET_KEY")
    return value


def secret_for(settings: Settings) -> str:
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value()
    return load_or_create_secret(settings.data_dir)


def secret_of(request: Request) -> str:
    state = request.app.state
    cached: str | None = getattr(state, "cookie_secret", None)
    if cached is None:
        cached = secret_for(state.settings)
        state.cookie_secret = cached
    return cached


# ------------------------------------------------------------------------------------ requests


def authenticate(session: DbSession, token: str) -> tuple[Team, int] | None:
    """The team of a typed-in API token and the token's id; None for an unknown or revoked one.
    The caller commits (the token's last use is recorded)."""
    row = token_row(session, token.strip())
    if row is None:
        return None
    team = team_for_token(session, token.strip())
    return None if team is None else (team, row.id)


def signed_in(request: Request, session: DbSession) -> SignedIn | None:
    """The team signed in on this browser; None without a valid cookie or once its token is
    revoked."""
    value = request.cookies.get(COOKIE_NAME)
    found = verify(secret_of(request), value)
    if found is None or value is None:
        return None
    token = session.get(ApiToken, found.token_id)
    if token is None or token.revoked_at is not None or token.team_id != found.team_id:
        return None
    team = session.get(Team, found.team_id)
    if team is None:
        return None
    return SignedIn(team=team, token_id=token.id, cookie=value)


def organiser_from_request(request: Request, session: DbSession) -> tuple[Team, str] | None:
    """The organiser team signed in on this browser, and its cookie value; None otherwise."""
    who = signed_in(request, session)
    if who is None or not who.team.is_organiser:
        return None
    return who.team, who.cookie


def is_organiser_request(request: Request, session: DbSession) -> bool:
    return organiser_from_request(request, session) is not None


def is_https(request: Request) -> bool:
    # uvicorn's proxy headers make the scheme the client's when a trusted proxy says https.
    return request.url.scheme == "https"


def set_session_cookie(request: Request, response: Response, team_id: int,
                       token_id: int) -> None:
    response.set_cookie(COOKIE_NAME, issue(secret_of(request), team_id, token_id),
                        max_age=MAX_AGE_S, httponly=True, samesite="strict",
                        secure=is_https(request), path="/")


def clear_session_cookie(request: Request, response: Response) -> None:
    response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="strict",
                           secure=is_https(request))


def same_origin(request: Request) -> bool:
    """False for a request a browser says came from another site.

    Browsers send `Sec-Fetch-Site` and `Origin` on form posts; a request with neither (a
    script, curl) has no ambient cookie to abuse unless its sender holds one."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True
    if origin == "null":
        return False
    expected = f"{request.url.scheme}://{request.url.netloc}"
    return origin.rstrip("/") == expected
