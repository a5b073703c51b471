"""Mixed load on loopback: uploaders and leaderboard readers at once, then nothing lost.

    .venv/bin/python benchmarks/bench_load.py [--seconds 30] [--uploaders 20] [--readers 50]
        [--rows 2000] [--database-url URL] [--consumer-workers 1]

Prepares a synthetic NL test set and a fresh database (SQLite in the data dir by default),
creates one competing team per uploader (not quota-exempt; LB_DAILY_QUOTA raised so the quota is
checked, never hit), and starts the real service as a subprocess: `leaderboard serve` with its
queue consumer. For `--seconds`:

- each uploader (its own team, its own keep-alive connection) posts valid prediction files
  back to back; every 4th upload carries an Idempotency-Key and is sent twice at once (a client
  retrying while the first try is in flight): both answers must name the same submission;
- each reader sends GET /api/v1/leaderboard, GET / and GET /health in turn on a keep-alive
  connection (a bare asyncio client, so the client costs little of the 2 cores).

Then it waits for the queue to drain and checks the database: every accepted upload id has
exactly one submission row, in state `scored`, with exactly one set of score rows (3 splits ×
3 tasks) under the scorer version; no submission row exists that no answer named; an
idempotency key maps to one row. It prints requests, errors (by status) and p50/p99 latency per
kind, and the ratio of each kind's p99 to /health's p99 under the same load (the in-run
reference: a trivial route through the same server, loop and database). Lost must be 0.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out" / "bench_load"
LEADERBOARD = str(Path(sys.executable).parent / "leaderboard")
sys.path.insert(0, str(ROOT))

KEYED_EVERY = 4  # every 4th upload is sent twice with one Idempotency-Key
READ_KINDS = (("leaderboard JSON", "/api/v1/leaderboard"), ("page /", "/"),
              ("health", "/health"))


@dataclass
class Tally:
    """What the clients saw: latencies and outcomes per kind of request."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    outcomes: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    accepted: dict[int, int] = field(default_factory=dict)  # submission id -> team index
    keyed: dict[tuple[int, str], set[int]] = field(default_factory=lambda: defaultdict(set))
    duplicates_answered: int = 0

    def record(self, kind: str, seconds: float, outcome: str) -> None:
        self.latencies[kind].append(seconds)
        self.outcomes[kind][outcome] += 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


# ------------------------------------------------------------------------------------ setup


def prepare(data_dir: Path, database_url: str | None, rows: int,
            teams: int) -> list[tuple[int, str]]:
    """The test set, the migrated database and the teams; returns their (id, token)."""
    os.environ["LB_DATA_DIR"] = str(data_dir)
    if database_url:
        os.environ["LB_DATABASE_URL"] = database_url
    from app.config import Settings
    from app.db import make_engine, session_factory, upgrade
    from app.teams.service import create_team
    from evaluator.data.prepare import prepare_csv
    from evaluator.data.synth import write_synthetic

    settings = Settings()
    upgrade(settings)
    write_synthetic(data_dir / "raw", ["NL"], train_rows=0, test_rows=rows, seed=0)
    prepare_csv(data_dir / "raw" / "AliExpress_NL" / "test.csv", data_dir / "prepared" / "NL")
    engine = make_engine(settings)
    tokens = []
    with session_factory(engine)() as session:
        for i in range(teams):
            team, issued = create_team(session, None, f"load-{i:02d}")
            tokens.append((team.id, issued.secret))
        session.commit()
    engine.dispose()
    return tokens


def prediction_files(rows: int, count: int) -> list[bytes]:
    import numpy as np

    files = []
    for seed in range(count):
        rng = np.random.default_rng(seed)
        ctr, cvr = rng.random(rows), rng.random(rows)
        lines = ["row_id,ctr,cvr", *(f"{i},{ctr[i]:.6f},{cvr[i]:.6f}" for i in range(rows))]
        files.append(("\n".join(lines) + "\n").encode())
    return files


def start_server(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        process = subprocess.Popen([LEADERBOARD, "serve", "--port", str(port)], cwd=ROOT,
                                   env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"`leaderboard serve` exited with {process.returncode}; "
                               f"see {log}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    stop_server(process)
    raise RuntimeError(f"`leaderboard serve` did not answer within 120 s; see {log}")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    # SIGINT to serve: uvicorn stops, then serve stops its consumer (SIGINT, then waits).
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


# ---------------------------------------------------------------------------------- clients


async def uploader(port: int, index: int, token: str, files: list[bytes], deadline: float,
                   tally: Tally) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=2, max_keepalive_connections=2)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers,
                                 limits=limits, timeout=120) as client:

        async def post(body: bytes, key: str | None) -> None:
            start = time.perf_counter()
            try:
                response = await client.post(
                    "/api/v1/submissions",
                    headers={"Idempotency-Key": key} if key else None,
                    data={"country": "NL", "method": f"load method {index % 3}"},
                    files={"file": ("predictions.csv", body, "text/csv")})
            except httpx.HTTPError as exc:
                tally.record("upload", time.perf_counter() - start, type(exc).__name__)
                return
            tally.record("upload", time.perf_counter() - start, str(response.status_code))
            if response.status_code == 202:
                answer = response.json()
                tally.accepted[answer["id"]] = index
                if answer["duplicate"]:
                    tally.duplicates_answered += 1
                if key:
                    tally.keyed[(index, key)].add(answer["id"])

        n = 0
        while time.monotonic() < deadline:
            body = files[(index + n) % len(files)]
            if n % KEYED_EVERY == KEYED_EVERY - 1:
                key = f"load-{index}-{n}"
                await asyncio.gather(post(body, key), post(body, key))
            else:
                await post(body, None)
            n += 1


async def reader(port: int, index: int, deadline: float, tally: Tally) -> None:
    """One keep-alive HTTP/1.1 connection, requests back to back, as a browser would ask
    (gzip accepted); reads exactly Content-Length bytes and parses nothing."""
    n = index  # readers start at different kinds
    while time.monotonic() < deadline:
        try:
            reader_, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError as exc:
            tally.record("connect", 0.0, type(exc).__name__)
            await asyncio.sleep(0.1)
            continue
        try:
            while time.monotonic() < deadline:
                kind, path = READ_KINDS[n % len(READ_KINDS)]
                n += 1
                request = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                           "Accept-Encoding: gzip\r\nConnection: keep-alive\r\n\r\n").encode()
                start = time.perf_counter()
                writer.write(request)
                head = await reader_.readuntil(b"\r\n\r\n")
                status = head.split(b" ", 2)[1].decode()
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader_.readexactly(length)
                tally.record(kind, time.perf_counter() - start, status)
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            tally.record("connect", 0.0, type(exc).__name__)
        finally:
            writer.close()


async def load(port: int, tokens: list[str], files: list[bytes], readers: int,
               seconds: float) -> Tally:
    tally = Tally()
    deadline = time.monotonic() + seconds
    await asyncio.gather(
        *(uploader(port, i, token, files, deadline, tally) for i, token in enumerate(tokens)),
        *(reader(port, i, deadline, tally) for i in range(readers)))
    return tally


# ------------------------------------------------------------------------------ the check


@dataclass
class Audit:
    accepted: int
    rows: int
    scored: int
    not_scored: dict[str, int]
    missing_rows: list[int]
    unanswered_rows: list[int]
    wrong_score_sets: dict[int, int]
    keys_split: int
    misattributed: int
    drain_seconds: float

    @property
    def lost(self) -> int:
        return len(self.missing_rows) + sum(self.not_scored.values())

    @property
    def duplicated(self) -> int:
        return (len(self.unanswered_rows) + len(self.wrong_score_sets) + self.keys_split
                + self.misattributed)


def wait_and_audit(tally: Tally, team_ids: list[int], drain_timeout: float) -> Audit:
    from sqlalchemy import func, select

    from app.config import Settings
    from app.db import make_engine, session_factory
    from app.models import Score, Submission
    from evaluator.schema import SPLITS, TASKS
    from evaluator.scoring import SCORER_VERSION

    engine = make_engine(Settings())
    factory = session_factory(engine)
    ids = set(tally.accepted)
    started = time.monotonic()
    try:
        while True:
            with factory() as session:
                pending = session.execute(select(func.count()).select_from(Submission).where(
                    Submission.state.in_(("queued", "running")))).scalar_one()
            if pending == 0 or time.monotonic() - started > drain_timeout:
                break
            time.sleep(1.0)
        drained = time.monotonic() - started
        with factory() as session:
            found = session.execute(
                select(Submission.id, Submission.state, Submission.team_id)).all()
            rows = {sid: state for sid, state, _ in found}
            teams = {sid: team for sid, _, team in found}
            sets = {sid: int(n) for sid, n in session.execute(
                select(Score.submission_id, func.count()).where(
                    Score.scorer_version == SCORER_VERSION).group_by(Score.submission_id))}
            keys = session.execute(
                select(Submission.team_id, Submission.idempotency_key, func.count())
                .where(Submission.idempotency_key.is_not(None))
                .group_by(Submission.team_id, Submission.idempotency_key)).all()
    finally:
        engine.dispose()
    per_set = len(SPLITS) * len(TASKS)
    not_scored = Counter(rows[i] for i in ids if i in rows and rows[i] != "scored")
    return Audit(
        accepted=len(ids), rows=len(rows), scored=sum(1 for i in ids if rows.get(i) == "scored"),
        not_scored=dict(not_scored), missing_rows=sorted(ids - set(rows)),
        unanswered_rows=sorted(set(rows) - ids),
        wrong_score_sets={i: sets.get(i, 0) for i in ids
                          if rows.get(i) == "scored" and sets.get(i, 0) != per_set},
        keys_split=sum(1 for *_, n in keys if n != 1)
        + sum(1 for found in tally.keyed.values() if len(found) != 1),
        misattributed=sum(1 for i, team in tally.accepted.items()
                          if i in teams and teams[i] != team_ids[team]),
        drain_seconds=drained)


# ------------------------------------------------------------------------------ reporting


def report(tally: Tally, audit: Audit, args: argparse.Namespace) -> None:
    health_p99 = quantile(tally.latencies["health"], 0.99)
    total = sum(len(v) for k, v in tally.latencies.items() if k != "connect")
    print(f"\nload: {args.uploaders} uploaders + {args.readers} readers for {args.seconds:.0f} s "
          f"on loopback, {args.rows}-row NL test set; {total} requests "
          f"({total / args.seconds:.0f}/s)")
    print(f"  {'kind':<18}{'requests':>9}{'p50 ms':>9}{'p99 ms':>9}{'p99/health':>11}  "
          "outcomes")
    for kind in ("upload", *(k for k, _ in READ_KINDS), "connect"):
        values = tally.latencies.get(kind, [])
        if not values and kind == "connect":
            continue
        p99 = quantile(values, 0.99)
        outcomes = ", ".join(f"{k}: {n}" for k, n in sorted(tally.outcomes[kind].items()))
        print(f"  {kind:<18}{len(values):>9}{quantile(values, 0.5) * 1000:>9.1f}"
              f"{p99 * 1000:>9.1f}{p99 / health_p99:>11.2f}  {outcomes}")
    errors = {kind: {k: n for k, n in c.items() if not k.startswith("2")}
              for kind, c in tally.outcomes.items()}
    print("  errors (non-2xx or failed): "
          + (", ".join(f"{kind} {e}" for kind, e in errors.items() if e) or "none"))
    keyed = len(tally.keyed)
    print(f"\nuploads accepted: {audit.accepted} distinct submissions "
          f"({keyed} keyed pairs sent twice, {tally.duplicates_answered} answered as duplicates)")
    print(f"queue drained in {audit.drain_seconds:.1f} s after the load")
    print(f"database: {audit.rows} submission rows; {audit.scored} accepted ids scored with one "
          f"score set each; not scored {audit.not_scored or 0}")
    print(f"LOST: {audit.lost} (accepted ids with no row: {len(audit.missing_rows)}, "
          f"not scored: {sum(audit.not_scored.values())})")
    print(f"DUPLICATED: {audit.duplicated} (rows no answer named: {len(audit.unanswered_rows)}, "
          f"score sets not 1×9: {len(audit.wrong_score_sets)}, idempotency keys with ≠1 "
          f"submission: {audit.keys_split}, rows of another team: {audit.misattributed})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--uploaders", type=int, default=20)
    parser.add_argument("--readers", type=int, default=50)
    parser.add_argument("--rows", type=int, default=2000, help="rows of the NL test set")
    parser.add_argument("--database-url", default=None, help="default: SQLite in the data dir")
    parser.add_argument("--consumer-workers", type=int, default=1)
    parser.add_argument("--drain-timeout", type=float, default=600)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=OUT) as tmp:
        data_dir = Path(tmp) / "data"
        teams = prepare(data_dir, args.database_url, args.rows, args.uploaders)
        tokens = [token for _, token in teams]
        files = prediction_files(args.rows, 8)
        env = {**os.environ, "LB_DATA_DIR": str(data_dir), "LB_DAILY_QUOTA": "1000000",
               "LB_CONSUMER_WORKERS": str(args.consumer_workers)}
        if args.database_url:
            env["LB_DATABASE_URL"] = args.database_url
        port = free_port()
        log = OUT / "server.log"
        log.write_bytes(b"")
        server = start_server(env, port, log)
        try:
            tally = asyncio.run(load(port, tokens, files, args.readers, args.seconds))
            audit = wait_and_audit(tally, [team_id for team_id, _ in teams],
                                   args.drain_timeout)
        finally:
            stop_server(server)
        report(tally, audit, args)
    if audit.lost or audit.duplicated:
        raise SystemExit(f"FAILED: {audit.lost} lost, {audit.duplicated} duplicated "
                         f"(server log: {log})")


if __name__ == "__main__":
    main()
