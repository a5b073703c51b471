"""The one owner of the challenge's state: whether the private split is revealed, what a
caller may see, and which scorer version a score shows.

The state is one row, seeded by a migration (0003) and never inserted on a read, so two first
readers cannot create two. Every route and page reads it through this module.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from app.audit import record as audit_record
from app.models import ChallengeState, Team
from evaluator import scoring
from evaluator.schema import SPLITS, Split

STATE_ROW_ID = 1


class ChallengeStateMissing(RuntimeError):
    """The database was not migrated: the state's row comes with `leaderboard db upgrade`."""


def state(session: Session, *, for_update: bool = False) -> ChallengeState:
    found = session.get(ChallengeState, STATE_ROW_ID, with_for_update=for_update)
    if found is None:
        raise ChallengeStateMissing(
            "the challenge_state row is missing; run `leaderboard db upgrade`")
    return found


def is_revealed(session: Session) -> bool:
    return bool(state(session).revealed)


def splits_for(revealed: bool, *, organiser: bool = False) -> tuple[Split, ...]:
    """Splits a caller may see: organisers all of them; anyone else the public one during the
    challenge and all of them after the reveal."""
    return SPLITS if organiser or revealed else ("public",)


def visible_splits(session: Session, team: Team | None = None) -> tuple[Split, ...]:
    return splits_for(is_revealed(session), organiser=team is not None and team.is_organiser)


def board_split(revealed: bool) -> Split:
    """The split the leaderboard ranks on."""
    return "private" if revealed else "public"


def version_key(version: str) -> tuple[int, int | str]:
    """Order scorer versions: numeric ones numerically ("10" after "9"), then the others."""
    return (0, int(version)) if version.isdigit() else (1, version)


def shown_version(versions: Iterable[str]) -> str | None:
    """The scorer version whose scores a submission shows: the installed scorer's when it has
    them, else the newest it has; None when it has none."""
    have = set(versions)
    if scoring.SCORER_VERSION in have:
        return scoring.SCORER_VERSION
    return max(have, key=version_key) if have else None


def set_revealed(session: Session, actor: Team | None, revealed: bool) -> ChallengeState:
    """Reveal the private split (the leaderboard switches to it), or take it back."""
    current = state(session, for_update=True)
    previous = bool(current.revealed)
    current.revealed = revealed
    current.revealed_at = datetime.now(UTC) if revealed else None
    audit_record(session, actor, "reveal" if revealed else "unreveal", "challenge", None,
                 {"was_revealed": previous})
    session.flush()
    return current
