"""The browser's login session: a signed cookie and a CSRF token derived from it.

The browser holds `lb_org=<team id>.<issued at>.<signature>` (HttpOnly, SameSite=Strict). The
signature is an HMAC of the rest under the service's secret, so the cookie cannot be forged or
extended; every request still checks that the team exists and is an organiser, so demoting a
team ends its sessions. POST forms carry a CSRF token, an HMAC of the cookie value: SameSite
already keeps other sites' requests from carrying the cookie, the token covers old browsers.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass

from fastapi import Request
from sqlalchemy.orm import Session as DbSession

from app.config import Settings
from app.models import Team

COOKIE_NAME = "lb_org"
MAX_AGE_S = 12 * 3600


@dataclass(frozen=True)
class Session:
    team_id: int
    issued_at: int


def _mac(secret: str, message: str) -> str:
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def issue(secret: str, team_id: int, *, now: float | None = None) -> str:
    issued = int(time.time() if now is None else now)
    body = f"{team_id}.{issued}"
    return f"{body}.{_mac(secret, 'session|' + body)}"


def verify(secret: str, value: str | None, *, now: float | None = None) -> Session | None:
    """The session a cookie value stands for, or None when it is malformed, forged or old."""
    if not value or len(value) > 200:
        return None
    parts = value.split(".")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
        return None
    body = f"{parts[0]}.{parts[1]}"
    if not hmac.compare_digest(parts[2], _mac(secret, "session|" + body)):
        return None
    issued = int(parts[1])
    current = time.time() if now is None else now
    if not issued <= current + 60 or current - issued > MAX_AGE_S:
        return None
    return Session(team_id=int(parts[0]), issued_at=issued)


def csrf_token(secret: str, cookie_value: str) -> str:
    return _mac(secret, "csrf|" + cookie_value)


def check_csrf(secret: str, cookie_value: str, token: str | None) -> bool:
    return token is not None and hmac.compare_digest(token, csrf_token(secret, cookie_value))


def secret_of(request: Request) -> str:
    settings: Settings = request.app.state.settings
    return settings.secret_key.get_secret_value()


def organiser_from_request(request: Request, session: DbSession) -> tuple[Team, str] | None:
    """The organiser team logged in on this browser, and its cookie value; None otherwise."""
    value = request.cookies.get(COOKIE_NAME)
    found = verify(secret_of(request), value)
    if found is None or value is None:
        return None
    team = session.get(Team, found.team_id)
    if team is None or not team.is_organiser:
        return None
    return team, value


def is_organiser_request(request: Request, session: DbSession) -> bool:
    return organiser_from_request(request, session) is not None
