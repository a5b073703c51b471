"""Helpers of the phase tests: a clock the test sets, and a challenge file stored in the DB."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from app.db import make_engine, session_factory
from app.phases import store

START = datetime(2026, 11, 1, tzinfo=UTC)


class SetClock:
    """The app's injectable clock, at whatever moment the test puts it."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at


def stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def challenge_toml(*, feedback: str = "exact", selection_limit: int = 2, daily: int = 3,
                   total: int | None = None, dev_kinds: str = '["file", "checkpoint"]',
                   level: float = 0.05) -> str:
    """development [START, START+10d), a gap, final [START+11d, START+20d) taking files only,
    the end at START+20d, post-challenge from START+21d."""
    total_line = f"total_limit = {total}\n" if total is not None else ""
    return f"""
selection_limit = {selection_limit}
feedback = "{feedback}"
ladder_level = {level}

[[phase]]
name = "development"
opens = {stamp(START)}
closes = {stamp(START + timedelta(days=10))}
kinds = {dev_kinds}
daily_limit = {daily}
{total_line}
[[phase]]
name = "final"
opens = {stamp(START + timedelta(days=11))}
closes = {stamp(START + timedelta(days=20))}
kinds = ["file"]
daily_limit = 1

[[phase]]
name = "post"
opens = {stamp(START + timedelta(days=21))}
closes = {stamp(START + timedelta(days=400))}
post_challenge = true
"""


def set_challenge(settings: Any, text: str | None) -> None:
    engine = make_engine(settings)
    try:
        with session_factory(engine)() as session:
            store.set_schedule(session, None, text, "test")
            session.commit()
    finally:
        engine.dispose()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def upload(client: Any, token: str, body: bytes, method: str = "mine") -> Any:
    return client.post("/api/v1/submissions", headers=bearer(token),
                       files={"file": ("predictions.csv", body, "text/csv")},
                       data={"country": "NL", "method": method})


def at(world: Any, submission: Any, when: datetime) -> Any:
    """Date a World submission (the World makes them at the real time)."""
    submission.created_at = when
    world.session.commit()
    return submission


def skewed(world: Any, public_skill: float, private_skill: float, seed: int) -> Any:
    """Predictions whose skill differs on the public and the private rows."""
    import numpy as np

    from evaluator.predictions import Predictions

    rng = np.random.default_rng(seed)
    public = np.asarray(world.data.public, dtype=bool)
    skill = np.where(public, public_skill, private_skill)
    click = np.asarray(world.data.click, dtype=float)
    conversion = np.asarray(world.data.conversion, dtype=float)
    ctr = 1 / (1 + np.exp(-(skill * click + rng.normal(size=click.size))))
    cvr = 1 / (1 + np.exp(-(skill * conversion + rng.normal(size=click.size))))
    return Predictions(ctr=ctr, cvr=cvr, ctcvr=ctr * cvr)
