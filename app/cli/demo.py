"""`leaderboard demo`: the whole service on one machine, on SQLite, with nothing else running.

It writes synthetic data for the four countries, prepares the test sets, creates an organiser
team, a baseline team and two sample participant teams, starts the service (API, leaderboard page
and a queue consumer), enters the participants' files over HTTP, then trains the five reference
baselines and enters and verifies them while the page is already up. A second run reuses what the
first one built; `--fresh` starts over.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import numpy.typing as npt

from baselines.config import CHALLENGE_MODELS
from evaluator.schema import COUNTRIES, Country

from .client import Client, connect
from .processes import stop_gracefully

MARKER = ".mtme-demo"
TOKENS_FILE = "tokens.json"
ENTERED_FILE = "entered.json"
PARTICIPANTS_FILE = "participants.json"
SERVER_LOG = "server.log"
# Organisers enter the baselines and verify them; the two participants show what teams see.
# The newcomer is left alone by the demo: a person trying the service gets a team whose whole
# daily quota is still there (the sample teams' is partly used by the demo's own entries).
NEWCOMER = "newcomer"
TEAMS: dict[str, dict[str, bool]] = {
    "organisers": {"organiser": True},
    "baselines": {"baseline": True},
    "logreg-lab": {},
    "coin-flip": {},
    NEWCOMER: {},
}

Say = Callable[[str], None]


class DemoError(Exception):
    """A step of the demo could not be done; the message says which and why."""


@dataclass(frozen=True)
class DemoPlan:
    folder: Path
    host: str = "127.0.0.1"
    port: int = 8000
    countries: tuple[Country, ...] = COUNTRIES
    train_rows: int = 100_000
    test_rows: int = 100_000
    seed: int = 0
    baselines: tuple[str, ...] = CHALLENGE_MODELS
    threads: int = 1
    fresh: bool = False

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def runs(self) -> Path:
        return self.folder / "runs"


# ------------------------------------------------------------------------------------- folder


def claim_folder(plan: DemoPlan, say: Say) -> bool:
    """Make the demo folder ours; True when an earlier demo's data is there to reuse.

    The folder is wiped only when it carries the demo's marker: pointing `--dir` at a folder of
    one's own must never delete it."""
    folder = plan.folder
    if folder.exists() and any(folder.iterdir()):
        if not (folder / MARKER).is_file():
            raise DemoError(f"{folder} exists and was not made by `leaderboard demo`; "
                            "name an empty or new folder with --dir")
        if not plan.fresh and (folder / TOKENS_FILE).is_file():
            say(f"reusing the demo in {folder} (--fresh starts over)")
            return True
        say(f"starting over in {folder}")
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MARKER).write_text("made by `leaderboard demo`; safe to delete\n")
    return False


def build_data(plan: DemoPlan, say: Say) -> None:
    from evaluator.data.prepare import prepare_csv
    from evaluator.data.synth import write_synthetic

    say(f"writing synthetic data: {', '.join(plan.countries)}, {plan.train_rows:,} train and "
        f"{plan.test_rows:,} test rows each")
    write_synthetic(plan.folder, plan.countries, plan.train_rows, plan.test_rows, plan.seed)
    for cc in plan.countries:
        # The service scores against DATA_DIR/prepared/CC; the baselines find it there too.
        meta = prepare_csv(plan.folder / f"AliExpress_{cc}" / "test.csv",
                           plan.folder / "prepared" / cc)
        say(f"  {cc}: test set of {meta.n_rows:,} rows, {meta.n_clicks:,} clicks, "
            f"{meta.n_conversions:,} purchases")


CHALLENGE_FILE = "challenge.toml"
DEMO_DAYS = 14


def challenge_file_text(start: datetime) -> str:
    """The demo's schedule, relative to its first start: development open now for two weeks
    (the end), then a post-challenge phase for a year."""
    def stamp(at: datetime) -> str:
        return at.strftime("%Y-%m-%dT%H:%M:%SZ")

    opens = start.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    end = opens + timedelta(days=DEMO_DAYS)
    return f"""# The demo's challenge file (docs/challenge-file.md), written at its first start.
selection_limit = 2     # scored submissions per team and country that count at the end
feedback = "ladder"     # a public figure changes only when significantly better
ladder_level = 0.05
reveal = "at_end"       # the private split shows by itself at the end

[[phase]]
name = "development"
opens = {stamp(opens)}
closes = {stamp(end)}   # the end of the challenge: selections lock, the final board freezes
kinds = ["file", "checkpoint"]
daily_limit = 5
total_limit = 100

[[phase]]
name = "post-challenge"
opens = {stamp(end)}
closes = {stamp(end + timedelta(days=365))}
kinds = ["file", "checkpoint"]
daily_limit = 5
post_challenge = true   # shown apart, never in the final ranking
"""


def write_challenge_file(plan: DemoPlan, say: Say) -> None:
    path = plan.folder / CHALLENGE_FILE
    path.write_text(challenge_file_text(datetime.now(UTC)))
    say(f"challenge file {path}: development phase open now for {DEMO_DAYS} days, then "
        "post-challenge")


def service_env(plan: DemoPlan) -> dict[str, str]:
    # The demo is SQLite and the SQLite queue: whatever LB_ settings the shell has would
    # point it at other servers or another data folder.
    env = {k: v for k, v in os.environ.items() if not k.startswith("LB_")}
    env.update({"LB_DATA_DIR": str(plan.folder.resolve()), "LB_ENV": "development"})
    if (plan.folder / CHALLENGE_FILE).is_file():
        env["LB_CHALLENGE_FILE"] = str((plan.folder / CHALLENGE_FILE).resolve())
    return env


def create_teams(plan: DemoPlan, say: Say,
                 known: dict[str, str] | None = None) -> dict[str, str]:
    """Create the demo's teams missing from `known` (all of them on a first run; a demo made
    before the newcomer existed gets it now); returns every team's token."""
    from sqlalchemy import select

    from app.config import Settings
    from app.db import make_engine, session_factory, upgrade
    from app.models import Team
    from app.teams.service import create_team

    # Explicit Nones outrank the environment: the shell's LB_ settings must not leak in here.
    settings = Settings.model_validate({
        "database_url": None, "redis_url": None, "artifact_dir": None,
        "data_dir": plan.folder.resolve()})
    upgrade(settings)
    engine = make_engine(settings)
    tokens: dict[str, str] = dict(known or {})
    missing = [name for name in TEAMS if name not in tokens]
    if not missing:
        engine.dispose()
        return tokens
    try:
        with session_factory(engine)() as session:
            # The first organiser team is the actor of the others.
            actor = session.execute(select(Team).where(Team.is_organiser.is_(True))
                                    .order_by(Team.id)).scalars().first()
            for name in missing:
                team, issued = create_team(session, actor, name, **TEAMS[name])
                actor = actor or (team if team.is_organiser else None)
                tokens[name] = issued.secret
            session.commit()
    finally:
        engine.dispose()
    path = plan.folder / TOKENS_FILE
    path.touch(mode=0o600)
    path.write_text(json.dumps(tokens, indent=2) + "\n")
    say(f"teams {', '.join(missing)} created; their tokens are in {path}")
    return tokens


def newcomer_line(plan: DemoPlan, tokens: dict[str, str], quota: int) -> str:
    return (f"try it as a participant: sign in at {plan.url}/login as team '{NEWCOMER}' "
            f"(untouched by the demo: all {quota} of today's submissions left) with the token "
            f"{tokens[NEWCOMER]}")


# ------------------------------------------------------------------------------------- server


@contextmanager
def running_server(plan: DemoPlan, say: Say) -> Iterator[subprocess.Popen[bytes]]:
    log_path = plan.folder / SERVER_LOG
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "app", "serve", "--host", plan.host, "--port",
             str(plan.port)],
            env=service_env(plan), stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_healthy(plan, process, log_path)
            say(f"serving at {plan.url} (log: {log_path})")
            yield process
        finally:
            stop_gracefully(process)


def wait_healthy(plan: DemoPlan, process: subprocess.Popen[bytes], log: Path,
                 timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:]
            raise DemoError(f"the service exited with status {process.returncode} before it "
                            f"answered (is port {plan.port} taken? --port picks another); "
                            f"end of {log}:\n{tail}")
        try:
            if httpx.get(f"{plan.url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            stop_gracefully(process)
            raise DemoError(f"the service did not answer on {plan.url} within {timeout_s:.0f} s;"
                            f" see {log}")
        time.sleep(0.3)


# -------------------------------------------------------------------------- sample entries


def logistic_predictions(folder: Path, cc: Country) -> npt.NDArray[np.float64]:
    """A plain participant's model: logistic regressions on the numerical features, one for
    clicks (all rows) and one for purchases given a click (clicked rows)."""
    from sklearn.preprocessing import StandardScaler

    from baselines.data import load_country

    data = load_country(folder, cc)
    scaler = StandardScaler().fit(np.asarray(data.train.numerical, dtype=np.float64))
    x_train = scaler.transform(np.asarray(data.train.numerical, dtype=np.float64))
    x_test = scaler.transform(np.asarray(data.test.numerical, dtype=np.float64))
    click = np.asarray(data.train.click)
    conversion = np.asarray(data.train.conversion)
    out = np.empty((x_test.shape[0], 2))
    out[:, 0] = _fit_or_rate(x_train, click, x_test)
    clicked = click == 1
    out[:, 1] = _fit_or_rate(x_train[clicked], conversion[clicked], x_test)
    return out


def _fit_or_rate(x: npt.NDArray[np.float64], y: npt.NDArray[np.int8],
                 x_test: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    from sklearn.linear_model import LogisticRegression

    if len(np.unique(y)) < 2:
        # Too few rows to see both classes: the base rate is the honest guess.
        return np.full(x_test.shape[0], float(y.mean()) if y.size else 0.0)
    model = LogisticRegression(max_iter=500, class_weight=None)
    model.fit(x, y)
    proba: npt.NDArray[np.float64] = model.predict_proba(x_test)[:, 1]
    return proba


def random_predictions(n_rows: int, seed: int) -> npt.NDArray[np.float64]:
    return np.random.default_rng(seed).random((n_rows, 2))


def write_prediction_file(path: Path, values: npt.NDArray[np.float64]) -> None:
    with path.open("w") as out:
        out.write("row_id,ctr,cvr\n")
        for row_id, (ctr, cvr) in enumerate(np.clip(values, 0.0, 1.0)):
            out.write(f"{row_id},{ctr:.7f},{cvr:.7f}\n")


def enter_participants(plan: DemoPlan, tokens: dict[str, str], say: Say) -> list[int]:
    from evaluator.data.prepared import PreparedData

    folder = plan.folder / "participants"
    folder.mkdir(exist_ok=True)
    ids: list[int] = []
    for index, cc in enumerate(plan.countries):
        n_rows = PreparedData.open(plan.folder / "prepared" / cc).n_rows
        for team, method in (("logreg-lab", "logistic regression"),
                             ("coin-flip", "uniform random")):
            values = (logistic_predictions(plan.folder, cc) if team == "logreg-lab"
                      else random_predictions(n_rows, plan.seed + index))
            path = folder / f"{team}_{cc}.csv"
            write_prediction_file(path, values)
            with connect(plan.url, tokens[team]) as client:
                answer = client.submit(cc, method, file=path,
                                       idempotency_key=f"demo-{team}-{cc}")
            ids.append(int(answer["id"]))
            say(f"  {team} entered {method} for {cc}: submission {answer['id']}")
    return ids


def wait_scored(plan: DemoPlan, token: str, ids: list[int], timeout_s: float = 600.0) -> None:
    deadline = time.monotonic() + timeout_s
    pending = set(ids)
    with httpx.Client(base_url=plan.url, timeout=60.0) as http:
        client = Client(http, token)
        while pending:
            pending = _still_pending(client, pending)
            if pending and time.monotonic() > deadline:
                raise DemoError(
                    f"submissions {sorted(pending)} not scored within {timeout_s:.0f} s")
            time.sleep(0.5)


def _still_pending(client: Client, pending: set[int]) -> set[int]:
    left = set(pending)
    for sid in sorted(pending):
        state = client.status(sid)
        if state["state"] == "failed":
            raise DemoError(f"submission {sid} failed: {state.get('reason')}")
        if state["state"] == "scored":
            left.discard(sid)
    return left


# ----------------------------------------------------------------------------------- baselines


def train_and_enter_baselines(plan: DemoPlan, tokens: dict[str, str], say: Say) -> int:
    """Train each missing run, then enter and verify each run not entered yet; returns how many
    were entered now. Resumable: runs and entries already done are skipped."""
    from dataclasses import replace

    from baselines.config import parse_model, preset_config
    from baselines.data import load_country
    from baselines.register import register_run, request_verification, wait_until_scored
    from baselines.train import SUMMARY_FILE, train

    entered_path = plan.folder / ENTERED_FILE
    entered: dict[str, int] = (json.loads(entered_path.read_text())
                               if entered_path.is_file() else {})
    count = 0
    with httpx.Client(base_url=plan.url, timeout=httpx.Timeout(30.0, write=600.0)) as client:
        for cc in plan.countries:
            data = load_country(plan.folder, cc)
            for name in plan.baselines:
                run = plan.runs / f"{cc}_{name}"
                if run.name in entered:
                    continue
                if not (run / SUMMARY_FILE).is_file():
                    cfg = replace(preset_config("demo", parse_model(name), cc), device="auto",
                                  seed=plan.seed)
                    started = time.monotonic()
                    summary = train(cfg, data, run, progress=False, threads=plan.threads)
                    aucs = ", ".join(f"{t} {'n/a' if a is None else f'{a:.3f}'}"
                                     for t, a in summary.test_auc.items())
                    say(f"  trained {name} for {cc} in {time.monotonic() - started:.0f} s "
                        f"({aucs})")
                entry = register_run(run, client, tokens["baselines"])
                entry = wait_until_scored(entry, client, tokens["baselines"], timeout_s=600)
                if entry.state != "scored":
                    raise DemoError(f"baseline {run.name} was not scored: {entry.state} "
                                    f"{entry.reason or ''}")
                request_verification(entry, client, tokens["organisers"])
                entered[run.name] = int(entry.submission_id)
                entered_path.write_text(json.dumps(entered, indent=2) + "\n")
                count += 1
                say(f"  entered {name} for {cc} as submission {entry.submission_id}; its "
                    "checkpoint is being verified")
    return count


def wait_verified(plan: DemoPlan, organiser_token: str, timeout_s: float = 900.0,
                  say: Say | None = None) -> dict[int, bool | None]:
    """Wait for the newest verification of every entered baseline; submission id → verified."""
    entered_path = plan.folder / ENTERED_FILE
    ids = sorted(json.loads(entered_path.read_text()).values()) if entered_path.is_file() else []
    outcome: dict[int, bool | None] = {}
    deadline = time.monotonic() + timeout_s
    headers = {"Authorization": f"Bearer {organiser_token}"}
    with httpx.Client(base_url=plan.url, timeout=30.0, headers=headers) as client:
        for sid in ids:
            while True:
                response = client.get(f"/api/v1/submissions/{sid}/verifications")
                response.raise_for_status()
                history = response.json()
                newest = history[0] if history else None
                if newest is not None and newest["state"] in ("done", "failed"):
                    outcome[sid] = newest["verified"]
                    if say is not None and newest["state"] == "failed":
                        say(f"  verification of submission {sid} failed: {newest['reason']}")
                    break
                if time.monotonic() > deadline:
                    raise DemoError(f"the checkpoint of submission {sid} was not verified "
                                    f"within {timeout_s:.0f} s")
                time.sleep(0.5)
    return outcome


# ---------------------------------------------------------------------------------------- run


def run_demo(plan: DemoPlan, say: Say, *, keep_serving: bool = True) -> None:
    reused = claim_folder(plan, say)
    if not reused:
        build_data(plan, say)
        write_challenge_file(plan, say)
        tokens = create_teams(plan, say)
    else:
        tokens = create_teams(plan, say, json.loads((plan.folder / TOKENS_FILE).read_text()))
    from app.config import Settings

    # The demo's server runs on the defaults (service_env drops the shell's LB_ settings).
    quota = int(Settings.model_fields["daily_quota"].default)
    with running_server(plan, say) as process:
        entered = plan.folder / PARTICIPANTS_FILE
        if not entered.is_file():
            # Also after an interrupted first run: the idempotency keys make a resent file
            # return its earlier submission.
            say("entering the sample participants' prediction files")
            ids = enter_participants(plan, tokens, say)
            wait_scored(plan, tokens["logreg-lab"], ids[0::2])
            wait_scored(plan, tokens["coin-flip"], ids[1::2])
            entered.write_text(json.dumps(ids) + "\n")
            say(f"the leaderboard is up at {plan.url}/ ; organisers log in at "
                f"{plan.url}/organiser with the 'organisers' token from "
                f"{plan.folder / TOKENS_FILE}")
        say(newcomer_line(plan, tokens, quota))
        if plan.baselines:
            say(f"training the baselines ({', '.join(plan.baselines)}) with the demo preset; "
                "each appears on the leaderboard as it is entered")
            train_and_enter_baselines(plan, tokens, say)
            outcome = wait_verified(plan, tokens["organisers"], say=say)
            say(f"all baselines entered; {sum(v is True for v in outcome.values())} of "
                f"{len(outcome)} checkpoints reproduce their prediction files")
        if keep_serving:
            say(newcomer_line(plan, tokens, quota))
            say(f"serving at {plan.url}/ until Ctrl-C")
            try:
                process.wait()
            except KeyboardInterrupt:
                say("stopping")
