"""Liveness after faults: seconds from a fault to the affected submission being scored.

    .venv/bin/python benchmarks/bench_liveness.py [--code DIR] [--cap 180] [--ckpt-seconds 8]

A deployment of its own, with the production defaults of every liveness setting: a private
PostgreSQL cluster (initdb + pg_ctl on a free port, in a temp dir) and a private redis-server
(no persistence), both restarted here, never the shared ones; `serve` (uvicorn + its supervised
queue consumer) of the code in `--code` (default: this checkout), on a small synthetic NL test
set. The job in flight is a real checkpoint, built here to take about `--ckpt-seconds` in the
sandbox, so each fault lands mid-job:

1. consumer killed: SIGKILL to serve's consumer while it runs the checkpoint;
2. worker SIGTERMed mid-checkpoint: SIGTERM to that consumer (`docker compose stop` sends it);
3. Redis restarted empty: killed, three files uploaded during the outage, started empty;
4. PostgreSQL restarted: `pg_ctl restart -m fast` while the checkpoint runs; readers poll the
   board meanwhile and every answer that is not 200 is counted;
5. `/health` turning degraded: the consumer frozen (SIGSTOP), then the time until `/health`
   says `degraded`.

Each time is capped at `--cap` seconds ("> cap": not scored by then). At the end every accepted
upload is checked in the database: lost (not scored) and duplicated (more submission rows than
accepted uploads, or not nine score rows) must be 0. Run it twice, `--code` pointing at a
checkout of the code before the change, for the "before" column (docs/liveness.md).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out" / "bench_liveness"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: Callable[[], bool], seconds: float, poll: float = 0.1) -> float | None:
    """Seconds until `check()` held, or None past `seconds`."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        try:
            if check():
                return time.monotonic() - start
        except Exception:  # a server restarting: ask again
            pass
        time.sleep(poll)
    return None


# ------------------------------------------------------------------------- private servers


class Postgres:
    def __init__(self, workdir: Path) -> None:
        self.dir = workdir / "pg"
        self.dir.mkdir()
        self.port = free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            shutil.chown(workdir, "postgres")
            shutil.chown(self.dir, "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self._run("initdb", "-D", str(self.dir / "data"), "-U", "postgres", "-A", "trust")

    def _run(self, *args: str) -> None:
        subprocess.run([*self.as_user, *args], check=True, capture_output=True)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def ctl(self, action: str) -> None:
        self._run("pg_ctl", "-D", str(self.dir / "data"), "-w", "-m", "fast", "-l",
                  str(self.dir / "log"), "-o", f"-p {self.port} -k {self.dir} -h 127.0.0.1",
                  action)


class Redis:
    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import redis

        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url)
        wait_for(lambda: bool(client.ping()), 20)
        client.close()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


# ------------------------------------------------------------------------------ the service


def slow_checkpoint(rows: int, seconds: float) -> bytes:
    """A TorchScript model whose forward takes about `seconds` for `rows` rows here."""
    import torch
    from torch import nn

    class Slow(nn.Module):
        def __init__(self, rounds: int) -> None:
            super().__init__()
            self.rounds = rounds
            self.w = nn.Parameter(torch.randn(63, 63) * 0.05)
            self.head = nn.Linear(63, 2)

        def forward(self, categorical: torch.Tensor, numerical: torch.Tensor) -> torch.Tensor:
            h = numerical
            for _ in range(self.rounds):
                h = torch.tanh(h @ self.w + numerical)
            return torch.sigmoid(self.head(h))

    probe = torch.jit.script(Slow(200))
    x = torch.rand(rows, 63)
    c = torch.zeros(rows, 16, dtype=torch.long)
    start = time.perf_counter()
    with torch.inference_mode():
        probe(c, x)
    per_round = (time.perf_counter() - start) / 200
    rounds = max(1, int(seconds / per_round))
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(Slow(rounds).eval()), buffer)
    return buffer.getvalue()


class Deployment:
    def __init__(self, code: Path, workdir: Path, rows: int) -> None:
        self.code = code
        self.workdir = workdir
        self.pg = Postgres(workdir)
        self.pg.ctl("start")
        self.redis = Redis(workdir)
        self.redis.start()
        self.data = workdir / "data"
        self._prepare(rows)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("LB_")}
        env.update({"LB_DATA_DIR": str(self.data), "LB_DATABASE_URL": self.pg.url,
                    "LB_REDIS_URL": self.redis.url, "LB_DAILY_QUOTA": "1000",
                    "PYTHONPATH": str(code)})
        self.env = env
        self.cli("db", "upgrade")
        self.token = self.cli("admin", "create-team", "bench").strip().splitlines()[-1]
        self.log = workdir / "serve.log"
        self.serve: subprocess.Popen[bytes] | None = None
        self.accepted: list[int] = []

    def _prepare(self, rows: int) -> None:
        from evaluator.data.prepare import prepare_csv
        from evaluator.data.synth import write_synthetic

        raw = self.workdir / "raw"
        write_synthetic(raw, ["NL"], train_rows=0, test_rows=rows, seed=3)
        prepare_csv(raw / "AliExpress_NL" / "test.csv", self.data / "prepared" / "NL")

    def cli(self, *args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "app", *args], cwd=self.code,
                              env=self.env, capture_output=True, text=True, check=True)
        return done.stdout

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.serve = subprocess.Popen(
                [sys.executable, "-m", "app", "serve", "--port", str(self.port)],
                cwd=self.code, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        if wait_for(lambda: httpx.get(f"{self.url}/health", timeout=3).status_code == 200,
                    120) is None:
            raise RuntimeError("serve did not start:\n" + self.log.read_text()[-3000:])
        if wait_for(lambda: bool(self.consumers()), 60) is None:
            raise RuntimeError("no consumer started")

    def consumers(self) -> list[int]:
        assert self.serve is not None
        found: list[int] = []
        for task in Path(f"/proc/{self.serve.pid}/task").glob("*"):
            try:
                found += [int(p) for p in (task / "children").read_text().split()]
            except FileNotFoundError:
                continue
        return found

    def stop(self) -> None:
        if self.serve is not None and self.serve.poll() is None:
            self.serve.send_signal(signal.SIGTERM)
            try:
                self.serve.wait(timeout=90)
            except subprocess.TimeoutExpired:
                self.serve.kill()
        for pid in self.consumers() if self.serve and self.serve.poll() is None else []:
            os.kill(pid, signal.SIGKILL)
        self.redis.kill()
        subprocess.run([*self.pg.as_user, "pg_ctl", "-D", str(self.pg.dir / "data"), "-m",
                        "immediate", "stop"], capture_output=True)

    def upload(self, body: bytes, checkpoint: bool = False) -> int:
        part = "checkpoint" if checkpoint else "file"
        with httpx.Client(base_url=self.url, timeout=60) as http:
            answer = http.post("/api/v1/submissions",
                               headers={"Authorization": f"Bearer {self.token}"},
                               files={part: ("x.pt" if checkpoint else "p.csv", body)},
                               data={"country": "NL", "method": "bench"})
        if answer.status_code != 202:
            raise RuntimeError(f"upload refused: {answer.status_code} {answer.text}")
        sid = int(answer.json()["id"])
        self.accepted.append(sid)
        return sid

    def state(self, sid: int) -> str:
        with httpx.Client(base_url=self.url, timeout=10) as http:
            answer = http.get(f"/api/v1/submissions/{sid}",
                              headers={"Authorization": f"Bearer {self.token}"})
        return str(answer.json()["state"]) if answer.status_code == 200 else "?"

    def health(self) -> dict[str, Any]:
        return dict(httpx.get(f"{self.url}/health", timeout=5).json())

    def tally(self) -> tuple[int, int]:
        """(lost, duplicated) over every accepted upload, from the database."""
        import sqlalchemy as sa

        engine = sa.create_engine(self.pg.url)
        with engine.connect() as conn:
            rows = conn.execute(sa.text(
                "SELECT id, state, (SELECT count(*) FROM score WHERE submission_id = s.id) "
                "FROM submission s")).all()
        engine.dispose()
        by_id = {int(r[0]): (str(r[1]), int(r[2])) for r in rows}
        lost = sum(1 for sid in self.accepted if by_id.get(sid, ("", 0))[0] != "scored")
        duplicated = (len(by_id) - len(set(self.accepted))
                      + sum(1 for sid in self.accepted if by_id.get(sid, ("", 9))[1] > 9))
        return lost, duplicated


def prediction_file(rows: int, seed: int) -> bytes:
    import numpy as np

    rng = np.random.default_rng(seed)
    lines = ["row_id,ctr,cvr"] + [f"{i},{a:.6f},{b:.6f}"
                                  for i, (a, b) in enumerate(rng.random((rows, 2)))]
    return ("\n".join(lines) + "\n").encode()


# ------------------------------------------------------------------------------- the faults


def running_checkpoint(dep: Deployment, ckpt: bytes, cap: float) -> int:
    sid = dep.upload(ckpt, checkpoint=True)
    if wait_for(lambda: dep.state(sid) == "running", cap) is None:
        raise RuntimeError(f"checkpoint {sid} never started")
    time.sleep(1.0)  # well inside the run
    return sid


def scored_within(dep: Deployment, sids: list[int], cap: float) -> float | None:
    return wait_for(lambda: all(dep.state(s) == "scored" for s in sids), cap, poll=0.25)


def consumer_killed(dep: Deployment, ckpt: bytes, cap: float) -> dict[str, Any]:
    sid = running_checkpoint(dep, ckpt, cap)
    for pid in dep.consumers():
        os.kill(pid, signal.SIGKILL)
    return {"seconds": scored_within(dep, [sid], cap)}


def consumer_sigtermed(dep: Deployment, ckpt: bytes, cap: float) -> dict[str, Any]:
    sid = running_checkpoint(dep, ckpt, cap)
    for pid in dep.consumers():
        os.kill(pid, signal.SIGTERM)
    return {"seconds": scored_within(dep, [sid], cap)}


def redis_restarted_empty(dep: Deployment, rows: int, cap: float) -> dict[str, Any]:
    dep.redis.kill()
    sids = [dep.upload(prediction_file(rows, seed)) for seed in (11, 12, 13)]
    health = dep.health()
    dep.redis.start()
    seconds = scored_within(dep, sids, cap)
    return {"seconds": seconds, "during_outage": {
        "queue": health.get("queue"), "db_queued": (health.get("jobs") or {}).get("queued")}}


def postgres_restarted(dep: Deployment, ckpt: bytes, cap: float) -> dict[str, Any]:
    sid = running_checkpoint(dep, ckpt, cap)
    httpx.get(f"{dep.url}/api/v1/leaderboard", timeout=10)  # the board in the cache
    answers: dict[str, int] = {}
    stop = threading.Event()

    def read() -> None:
        with httpx.Client(base_url=dep.url, timeout=10) as http:
            while not stop.is_set():
                try:
                    r = http.get("/api/v1/leaderboard")
                    key = str(r.status_code) + (" stale" if "x-leaderboard-stale" in r.headers
                                                else "")
                except httpx.HTTPError as exc:
                    key = type(exc).__name__
                answers[key] = answers.get(key, 0) + 1
                time.sleep(0.02)

    readers = [threading.Thread(target=read, daemon=True) for _ in range(4)]
    for t in readers:
        t.start()
    dep.pg.ctl("restart")
    seconds = scored_within(dep, [sid], cap)
    time.sleep(1.0)
    stop.set()
    for t in readers:
        t.join()
    return {"seconds": seconds, "board_reads": answers}


def health_degraded(dep: Deployment, cap: float) -> dict[str, Any]:
    pids = dep.consumers()
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        seconds = wait_for(lambda: dep.health().get("status") == "degraded", cap, poll=0.25)
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    return {"seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--code", type=Path, default=ROOT,
                        help="checkout whose `python -m app` is measured")
    parser.add_argument("--cap", type=float, default=180.0)
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--ckpt-seconds", type=float, default=8.0)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-liveness-"))
    os.chmod(workdir, 0o755)
    ckpt = slow_checkpoint(args.rows, args.ckpt_seconds)
    dep = Deployment(args.code.resolve(), workdir, args.rows)
    results: dict[str, Any] = {"code": str(args.code), "cap_s": args.cap}
    try:
        dep.start()
        # Warm: a first checkpoint run, so the timings below are not the first import's.
        warm = dep.upload(ckpt, checkpoint=True)
        results["checkpoint_run_s"] = scored_within(dep, [warm], args.cap)
        faults: list[tuple[str, Callable[[], dict[str, Any]]]] = [
            ("Redis restarted empty (3 uploads during the outage)",
             lambda: redis_restarted_empty(dep, args.rows, args.cap)),
            ("PostgreSQL restarted mid-checkpoint",
             lambda: postgres_restarted(dep, ckpt, args.cap)),
            ("/health degraded after the consumer froze (SIGSTOP)",
             lambda: health_degraded(dep, args.cap)),
            ("consumer killed (SIGKILL) mid-checkpoint",
             lambda: consumer_killed(dep, ckpt, args.cap)),
            ("consumer SIGTERMed mid-checkpoint",
             lambda: consumer_sigtermed(dep, ckpt, args.cap)),
        ]
        for name, fault in faults:
            # Each fault starts from a served deployment with a live consumer.
            wait_for(lambda: bool(dep.consumers()), 60)
            try:
                results[name] = fault()
            except Exception as exc:  # recorded, and the next fault still runs
                results[name] = {"seconds": None, "error": f"{type(exc).__name__}: {exc}"}
            print(f"{name}: {results[name]}", flush=True)
        wait_for(lambda: dep.tally()[0] == 0, args.cap)
        results["lost"], results["duplicated"] = dep.tally()
    finally:
        dep.stop()
        OUT.mkdir(parents=True, exist_ok=True)
        (OUT / "serve.log").write_bytes(dep.log.read_bytes() if dep.log.exists() else b"")
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(results, indent=2))
    print(f"\n| fault | seconds to scored (cap {args.cap:.0f}) |\n|---|---|")
    for key, value in results.items():
        if isinstance(value, dict):
            s = value.get("seconds")
            print(f"| {key} | {'> cap' if s is None else f'{s:.1f}'} |")
    print(f"\nsubmissions lost: {results.get('lost')}, duplicated: {results.get('duplicated')}")


if __name__ == "__main__":
    main()
