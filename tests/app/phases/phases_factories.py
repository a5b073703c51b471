"""Helpers of the phase tests: a challenge file stored in the DB, uploads, dated submissions and
predictions of different skill on the public and private rows. (The clock the test sets and the
challenge file itself: app_factories, shared with the /me tests.)"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from app_factories import START

from app.db import make_engine, session_factory
from app.phases import store

# In the development phase of `challenge_toml`, and past the challenge's end.
DURING = START + timedelta(days=2)
AFTER = START + timedelta(days=25)


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
