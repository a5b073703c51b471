"""Leaderboard latency under load: 10 000 scored submissions, 50 concurrent clients, loopback.

    .venv/bin/python benchmarks/bench_leaderboard.py [--submissions 10000] [--clients 50]
        [--requests 20] [--database-url URL]

Seeds a fresh database (SQLite file by default) with teams, scored submissions and their score
rows, starts a real uvicorn server on a free loopback port, and measures p50/p99 latency of the
JSON and HTML leaderboards with 50 clients each sending requests back to back. The reference in
the same run is what a request costs without the cache (the board rebuilt from the database and
rendered, measured in-process with no concurrency), so the printed ratio is what the cache
buys. Goals: p99 < 50 ms (JSON) and
< 100 ms (HTML), cached.

Seeded submissions have no stored predictions, so tie groups are "unavailable" here: the
benchmark measures the request path (version check, cache, rendering), not DeLong tests, which
run once per change of a column and in the background on large test sets.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
LEADERBOARD = str(Path(sys.executable).parent / "leaderboard")
sys.path.insert(0, str(ROOT))

from evaluator.schema import COUNTRIES, SPLITS, TASKS  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seed(database_url: str, n_submissions: int, seed_value: int = 0) -> None:
    """Teams (one per ~20 submissions), three methods each, every submission scored on every
    split and task; written with bulk inserts (the benchmark is about reading)."""
    from sqlalchemy import create_engine, insert
    from sqlalchemy.orm import Session

    from app.models import Score, Submission, Team

    rng = random.Random(seed_value)
    engine = create_engine(database_url)
    now = datetime.now(UTC)
    n_teams = max(1, n_submissions // 20)
    with Session(engine) as session:
        session.execute(insert(Team), [
            {"id": i + 1, "name": f"team-{i:04d}", "is_organiser": False,
             "is_baseline": i < 3, "created_at": now} for i in range(n_teams)])
        submissions = []
        scores = []
        for i in range(n_submissions):
            sid = i + 1
            submissions.append({
                "id": sid, "team_id": i % n_teams + 1, "country": COUNTRIES[i % 4],
                "method": f"method-{(i // 4) % 3}", "state": "scored", "file_format": "csv",
                "attempts": 1, "hidden": False, "disqualified": False,
                "created_at": now - timedelta(minutes=n_submissions - i), "finished_at": now,
            })
            skill = 0.70 + 0.02 * rng.random()
            for split in SPLITS:
                for task in TASKS:
                    auc = skill + {"ctr": 0.0, "cvr": 0.08, "ctcvr": 0.15}[task] + (
                        rng.gauss(0, 0.003))
                    scores.append({"submission_id": sid, "scorer_version": "1",
                                   "split": split, "task": task, "auc": auc,
                                   "ci_low": auc - 0.004, "ci_high": auc + 0.004,
                                   "logloss": 0.1, "n_pos": 5000, "n_neg": 200_000})
        session.execute(insert(Submission), submissions)
        session.execute(insert(Score), scores)
        session.commit()
    engine.dispose()


def uncached_build(database_url: str, data_dir: str, repeats: int) -> dict[str, list[float]]:
    """The reference: what every request would cost without the cache (build + render)."""
    from app.config import Settings
    from app.db import make_engine, session_factory
    from app.leaderboard.export import board_json
    from app.leaderboard.pages import overall_page
    from app.leaderboard.service import LeaderboardService

    settings = Settings(database_url=database_url, data_dir=Path(data_dir))
    engine = make_engine(settings)
    factory = session_factory(engine)
    out: dict[str, list[float]] = {"JSON /api/v1/leaderboard": [], "HTML /": []}
    for _ in range(repeats):
        for name, render in (("JSON /api/v1/leaderboard",
                              lambda b: json.dumps(board_json(b)).encode()),
                             ("HTML /", overall_page)):
            with factory() as session:
                start = time.perf_counter()
                service = LeaderboardService(settings)  # a fresh, empty cache
                service.rendered(session, "x", None, "mean_auc", render)
                out[name].append(time.perf_counter() - start)
    engine.dispose()
    return out


async def _client(port: int, path: str, requests: int, latencies: list[float]) -> None:
    """One keep-alive HTTP/1.1 connection sending requests back to back.

    A bare asyncio client, as a browser would ask (gzip accepted): it reads the status line,
    the headers and exactly Content-Length bytes, and does no decompression or parsing, so the
    latency measured is the server's and the loopback's, not a client library's.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept-Encoding: gzip\r\n"
               "Connection: keep-alive\r\n\r\n").encode()
    try:
        for _ in range(requests):
            start = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            if status != 200:
                raise RuntimeError(f"GET {path}: HTTP {status}")
    finally:
        writer.close()


async def hammer_async(port: int, path: str, clients: int, per_client: int) -> list[float]:
    warm: list[float] = []
    await _client(port, path, 1, warm)  # builds and caches the board
    latencies: list[float] = []
    await asyncio.gather(*(_client(port, path, per_client, latencies) for _ in range(clients)))
    return latencies


def hammer(port: int, path: str, clients: int, per_client: int) -> list[float]:
    return asyncio.run(hammer_async(port, path, clients, per_client))


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_server(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory", "--host",
         "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log"],
        cwd=ROOT, env=env,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code < 500:
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("the server did not start")


def measure(env: dict[str, str], clients: int, per_client: int) -> dict[str, list[float]]:
    port = free_port()
    server = run_server(env, port)
    try:
        return {
            "JSON /api/v1/leaderboard": hammer(port, "/api/v1/leaderboard", clients, per_client),
            "HTML /": hammer(port, "/", clients, per_client),
            # The floor: a tiny static response through the same server, client and load.
            "floor /static/style.css": hammer(port, "/static/style.css", clients, per_client),
        }
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=40, help="per client")
    parser.add_argument("--reference-requests", type=int, default=5,
                        help="uncached builds measured for the reference")
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-lb-") as tmp:
        url = args.database_url or f"sqlite:///{tmp}/bench.db"
        env = {**os.environ, "LB_DATABASE_URL": url, "LB_DATA_DIR": tmp}
        subprocess.run([LEADERBOARD, "db", "upgrade"], cwd=ROOT, env=env,
                       check=True)
        started = time.perf_counter()
        seed(url, args.submissions)
        print(f"seeded {args.submissions} scored submissions in "
              f"{time.perf_counter() - started:.1f} s ({url.split(':')[0]})")
        cached = measure(env, args.clients, args.requests)
        reference = uncached_build(url, tmp, args.reference_requests)

    goals = {"JSON /api/v1/leaderboard": 0.050, "HTML /": 0.100}
    floor = cached.pop("floor /static/style.css")
    load = os.getloadavg()[0]
    print(f"{args.clients} concurrent clients, loopback, {os.cpu_count()} CPUs, "
          f"load average {load:.1f} at the end")
    print(f"floor (GET /static/style.css, 7 kB, same server and clients): "
          f"p50 {quantile(floor, 0.5) * 1e3:.1f} ms, p99 {quantile(floor, 0.99) * 1e3:.1f} ms")
    print(f"{'endpoint':28} {'p50 ms':>8} {'p99 ms':>8} {'goal p99':>9} {'uncached':>9}"
          f" {'ratio':>7}")
    for name, latencies in cached.items():
        p50, p99 = quantile(latencies, 0.5), quantile(latencies, 0.99)
        ref50 = statistics.median(reference[name])
        print(f"{name:28} {p50 * 1e3:8.1f} {p99 * 1e3:8.1f} {goals[name] * 1e3:8.0f}  "
              f"{ref50 * 1e3:8.1f} {ref50 / p50:6.1f}x "
              f"{'OK' if p99 < goals[name] else 'MISSED'}")
    print(f"(uncached: median of {args.reference_requests} in-process rebuilds of the board "
          "and its rendering; ratio = uncached / cached p50)")


if __name__ == "__main__":
    main()
