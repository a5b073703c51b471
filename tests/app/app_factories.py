"""The app tests' one factories module: teams, submissions and scores in a migrated database;
a prepared test set, an artifact store and the settings that tie them together (`World`); a
challenge file and a clock the test sets, for the phase tests."""

from __future__ import annotations

import json
from collections.abc import Generator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app.config import Settings
from app.db import make_engine, session_factory, upgrade
from app.jobs.context import JobContext
from app.jobs.queue import Queue
from app.jobs.scoring import score_submission, upsert_scores
from app.models import Score, Submission, Team, Verification
from app.storage import ArtifactStore, save_predictions
from evaluator.data.prepared import FORMAT_VERSION, PreparedData
from evaluator.predictions import Predictions
from evaluator.schema import SPLITS, TASKS
from evaluator.scoring import score_predictions

Row = TypeVar("Row")
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def migrated_engine(url: str) -> Engine:
    """An engine on a database brought to the newest migration (as the service does)."""
    upgrade(url)
    return make_engine(url)


def add_team(session: Session, name: str, *, organiser: bool = False,
             baseline: bool = False) -> Team:
    team = Team(name=name, is_organiser=organiser, is_baseline=baseline)
    session.add(team)
    session.flush()
    return team


def add_submission(session: Session, team: Team, country: str = "NL", method: str = "m",
                   *, auc: float | None = 0.7, state: str = "scored", minutes: int = 0,
                   scorer_version: str = "1", hidden: bool = False,
                   disqualified: bool = False, predictions_sha256: str | None = None,
                   ) -> Submission:
    submission = Submission(team_id=team.id, country=country, method=method, state=state,
                            hidden=hidden, disqualified=disqualified,
                            created_at=T0 + timedelta(minutes=minutes),
                            predictions_sha256=predictions_sha256, file_format="csv")
    session.add(submission)
    session.flush()
    if state == "scored" and auc is not None:
        add_scores(session, submission, auc, scorer_version)
    return submission


def add_scores(session: Session, submission: Submission, auc: float,
               scorer_version: str = "1") -> None:
    for split in SPLITS:
        for task in TASKS:
            session.add(Score(submission_id=submission.id, scorer_version=scorer_version,
                              split=split, task=task, auc=auc, ci_low=auc - 0.01,
                              ci_high=auc + 0.01, logloss=0.1, n_pos=10, n_neg=90))
    session.flush()


N_ROWS = 1200


def write_prepared(folder: Path, seed: int = 0, n_rows: int = N_ROWS) -> PreparedData:
    """A small prepared test set with both classes in every split and task."""
    rng = np.random.default_rng(seed)
    click = (rng.random(n_rows) < 0.3).astype(np.int8)
    conversion = (click & (rng.random(n_rows) < 0.4)).astype(np.int8)
    public = rng.random(n_rows) < 0.3
    folder.mkdir(parents=True)
    meta = {"format_version": FORMAT_VERSION, "n_rows": n_rows, "n_public": int(public.sum()),
            "source_name": "t.csv", "source_sha256": "0" * 64, "split_salt": "s",
            "categorical_max": [0] * 16, "n_clicks": int(click.sum()),
            "n_conversions": int(conversion.sum())}
    (folder / "meta.json").write_text(json.dumps(meta))
    arrays = {"click": click, "conversion": conversion, "public": public,
              "categorical": np.zeros((n_rows, 16), np.int32),
              "numerical": np.zeros((n_rows, 63), np.float32),
              "search_id": np.arange(n_rows, dtype=np.int64)}
    for name, array in arrays.items():
        np.save(folder / f"{name}.npy", array)
    return PreparedData.open(folder)


class World:
    """Settings on a tmp data dir, a migrated SQLite DB, a prepared NL test set, a store."""

    def __init__(self, tmp: Path, db_url: str | None = None) -> None:
        """`db_url` names a migrated database (the shared fixture's); else a new SQLite file."""
        # Tests change the DB behind the service's back: check for changes on every request.
        self.settings = Settings(data_dir=tmp, database_url=db_url or f"sqlite:///{tmp / 'lb.db'}",
                                 env="development", leaderboard_check_seconds=0)
        self.engine = (make_engine(self.settings.db_url) if db_url
                       else migrated_engine(self.settings.db_url))
        self.session: Session = session_factory(self.engine)()
        self.data = write_prepared(tmp / "prepared" / "NL")
        self.store = ArtifactStore.of(self.settings)
        self.rng = np.random.default_rng(1)

    def predictions(self, skill: float) -> Predictions:
        noise = self.rng.normal(size=(3, N_ROWS))
        click = np.asarray(self.data.click, dtype=float)
        conversion = np.asarray(self.data.conversion, dtype=float)
        ctr = 1 / (1 + np.exp(-(skill * click + noise[0])))
        cvr = 1 / (1 + np.exp(-(skill * conversion + noise[1])))
        return Predictions(ctr=ctr, cvr=cvr, ctcvr=ctr * cvr)

    def close(self) -> None:
        self.session.close()
        self.engine.dispose()

    def submit(self, team: Team, predictions: Predictions, method: str = "m",
               store: bool = True) -> Submission:
        """A scored NL submission, scored by the real scorer, predictions stored or not."""
        lines = ["row_id,ctr,cvr"] + [f"{i},{float(a)!r},{float(b)!r}" for i, (a, b) in
                                      enumerate(zip(predictions.ctr, predictions.cvr,
                                                    strict=True))]
        file_sha256 = self.store.put_bytes(("\n".join(lines) + "\n").encode())
        submission = Submission(team_id=team.id, country="NL", method=method, state="scored",
                                file_format="csv", file_sha256=file_sha256,
                                predictions_sha256=save_predictions(self.store, predictions)
                                if store else None)
        self.session.add(submission)
        self.session.flush()
        upsert_scores(self.session, submission.id, score_predictions(self.data, predictions))
        self.session.commit()
        return submission


def app_client(world: World) -> Generator[TestClient, None, None]:
    """A TestClient on the real application for the world's settings, with an immediate queue
    (rescoring runs inside the request that enqueues it)."""
    from app.main import create_app

    queue = Queue(world.settings, immediate=True)
    try:
        with TestClient(create_app(world.settings, queue)) as client:
            yield client
    finally:
        queue.close()


def app_routes(app: Any) -> Iterator[tuple[str, str]]:
    """(method, path) of every route, through FastAPI's included-router wrappers too."""
    for route in app.routes:
        contexts = (route.effective_route_contexts()
                    if hasattr(route, "effective_route_contexts") else [route])
        for context in contexts:
            for method in sorted(set(getattr(context, "methods", None) or ()) - {"HEAD"}):
                yield method, context.path


def token_for(world: World, team: Team) -> str:
    from app.auth import issue_token

    secret = issue_token(world.session, team).secret
    world.session.commit()
    return secret


def add_verification(ctx: JobContext, submission_id: int) -> int:
    """A queued verification of the submission, as an organiser's request leaves it."""
    with ctx.factory() as session:
        ver = Verification(submission_id=submission_id, state="queued", tolerance=1e-4)
        session.add(ver)
        session.commit()
        return ver.id


def scored_with_checkpoint(ctx: JobContext, team_id: int, body: bytes) -> int:
    """A scored NL submission of the file `body` with a checkpoint that is never run (the
    tests hand verification a stand-in runner): its id."""
    with ctx.factory() as session:
        sub = Submission(team_id=team_id, country="NL", method="m", state="queued",
                         file_sha256=ctx.store.put_bytes(body), file_format="csv",
                         checkpoint_sha256=ctx.store.put_bytes(b"not run: the runner is given"),
                         outputs="ctr,cvr")
        session.add(sub)
        session.commit()
        sid = sub.id
    assert score_submission(ctx, sid) == "scored"
    return sid


def detached(ctx: JobContext, model: type[Row], row_id: int) -> Row:
    """The row as it is now, detached from its session."""
    with ctx.factory() as session:
        row = session.get(model, row_id)
        assert row is not None
        session.expunge(row)
        return row


def verification_row(ctx: JobContext, vid: int) -> Verification:
    return detached(ctx, Verification, vid)


def admin(world: World, *args: str) -> tuple[int, str]:
    """`leaderboard admin ARGS` on the world's database: (exit code, output)."""
    from typer.testing import CliRunner

    from app.cli import cli

    env = {"LB_DATABASE_URL": world.settings.db_url,
           "LB_DATA_DIR": str(world.settings.data_dir), "LB_ENV": "development"}
    result = CliRunner().invoke(cli, ["admin", *args], env=env)
    return result.exit_code, result.output


# ---------------------------------------------------------------- phases and their clock

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


def clocked_client(world: World, at: datetime) -> Iterator[tuple[Any, SetClock]]:
    """The body of a fixture: `app_client` with its clock at `at`, and the clock to move."""
    gen = app_client(world)
    client: Any = next(gen)
    clock = SetClock(at)
    client.app.state.clock = clock
    try:
        yield client, clock
    finally:
        gen.close()


def new_team(world: World, name: str, organiser: bool = False) -> tuple[Team, str]:
    """A team made through the service, and its token's secret."""
    from app.teams.service import create_team

    made, issued = create_team(world.session, None, name, organiser=organiser)
    world.session.commit()
    return made, issued.secret
