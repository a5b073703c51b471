"""The audit log writer. The caller owns the transaction: the row lands with its action or not."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from app.models import AuditLog, Team


def record(session: Session, actor: Team | int | None, action: str, target_type: str,
           target_id: int | None, detail: dict[str, Any] | None = None) -> AuditLog:
    actor_id = actor.id if isinstance(actor, Team) else actor
    entry = AuditLog(actor_team_id=actor_id, action=action, target_type=target_type,
                     target_id=target_id, detail=detail)
    session.add(entry)
    return entry
