"""The one clock every phase decision reads: `app.state.clock`, replaceable (tests, demos)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol

from starlette.requests import Request


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


SYSTEM_CLOCK = SystemClock()


def clock_of(request: Request) -> Clock:
    clock: Clock = getattr(request.app.state, "clock", SYSTEM_CLOCK)
    return clock
