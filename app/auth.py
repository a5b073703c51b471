"""API tokens: random, shown once, stored as a sha256 digest with a short lookup prefix."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import ApiToken, Team

TOKEN_PREFIX = "mtme_"
PREFIX_CHARS = 8
MAX_TOKEN_CHARS = 200
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    secret: str  # the only time the full token exists outside the client


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _lookup_prefix(token: str) -> str:
    return token[len(TOKEN_PREFIX):len(TOKEN_PREFIX) + PREFIX_CHARS]


def issue_token(session: Session, team: Team) -> IssuedToken:
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(team_id=team.id, prefix=_lookup_prefix(secret), digest=digest(secret))
    session.add(row)
    session.flush()
    return IssuedToken(token=row, secret=secret)


def token_row(session: Session, token: str) -> ApiToken | None:
    """The live token row for `token`, or None (unknown, revoked, malformed)."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > MAX_TOKEN_CHARS:
        return None
    wanted = digest(token)
    candidates = session.execute(
        select(ApiToken).where(ApiToken.prefix == _lookup_prefix(token),
                               ApiToken.revoked_at.is_(None))
    ).scalars()
    found = None
    # Compare every candidate in constant time so timing says nothing about near misses.
    for candidate in candidates:
        if hmac.compare_digest(candidate.digest, wanted):
            found = candidate
    return found


def team_for_token(session: Session, token: str) -> Team | None:
    row = token_row(session, token)
    if row is None:
        return None
    now = datetime.now(UTC)
    # At most one write a minute per token: a busy client must not make every request a write.
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
        row.last_used_at = now
    return session.get(Team, row.team_id)
