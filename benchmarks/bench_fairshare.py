"""Fair share of the workers against a team that holds them with endless-loop checkpoints.

    .venv/bin/python benchmarks/bench_fairshare.py [--wall 15] [--rows 2000]
        [--database-url URL] [--redis-url URL]

Starts the real service: `serve --no-consumer` and two `worker` processes (one thread each), on
a fresh data dir with a synthetic NL test set; the checkpoint wall limit is `--wall` seconds
(LB_CHECKPOINT_WALL_BASE_SECONDS, no per-row part, so a run ends at a known time). Each scenario
runs twice, with fair share (the default) and with LB_FAIR_SHARE=false (first come, first
served: the reference, in the same run):

1. *one loop running*: team `hog` uploads one checkpoint whose `forward` never returns; once it
   runs, team `victim` uploads a prediction file. Reported: seconds from the victim's upload to
   its `scored` state.
2. *both workers held, a backlog behind*: then `hog` uploads four more such checkpoints (the
   second worker takes one, as no other team waits; three queue), and `victim` uploads a second
   file. Reported: seconds until it is scored. First come, first served runs the hog's backlog
   first (about two wall limits); fair share runs the victim's job as soon as a worker is free.
3. *three teams, five jobs each*: team `hold` occupies both workers with two loops; teams a, b
   and c then upload five prediction files each, a's five first, then b's, then c's. Reported:
   the order the fifteen jobs started in (from `started_at`).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out" / "bench_fairshare"
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def loop_checkpoint(path: Path) -> bytes:
    import torch
    from torch import nn

    class LoopsInForward(nn.Module):
        def forward(self, categorical: torch.Tensor, numerical: torch.Tensor) -> torch.Tensor:
            x = numerical[:, :2]
            while bool(x.sum() > -1.0):
                x = x + 1.0
            return torch.sigmoid(x)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(LoopsInForward()), str(path))
    return path.read_bytes()


def prediction_file(rows: int, seed: int) -> bytes:
    import numpy as np

    rng = np.random.default_rng(seed)
    ctr, cvr = rng.random(rows), rng.random(rows)
    lines = ["row_id,ctr,cvr", *(f"{i},{ctr[i]:.6f},{cvr[i]:.6f}" for i in range(rows))]
    return ("\n".join(lines) + "\n").encode()


class Service:
    """`serve --no-consumer` and two single-thread `worker` processes on one data dir."""

    def __init__(self, data_dir: Path, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.log = log
        self.env = {**env, "PYTHONPATH": str(ROOT), "LB_DATA_DIR": str(data_dir),
                    "LB_CONSUMER_WORKERS": "1"}
        self.processes: list[subprocess.Popen[bytes]] = []

    def _start(self, *args: str) -> None:
        with open(self.log, "ab") as out:
            self.processes.append(subprocess.Popen(
                [sys.executable, "-m", "app", *args], cwd=ROOT, env=self.env, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True))

    def __enter__(self) -> Service:
        self._start("serve", "--no-consumer", "--port", str(self.port))
        for _ in range(2):
            self._start("worker")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.__exit__()
        raise RuntimeError(f"the service did not answer within 120 s; see {self.log}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *_: Any) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)  # the loops would hold a graceful stop
        for process in self.processes:
            process.wait()


def upload(client: httpx.Client, token: str, name: str, body: bytes) -> int:
    fields = {"country": "NL", "method": name.split(".")[0]}
    if name.endswith(".pt"):
        fields["outputs"] = "ctr,cvr"
    response = client.post("/api/v1/submissions", headers={"Authorization": f"Bearer {token}"},
                           files={"checkpoint" if name.endswith(".pt") else "file":
                                  (name, body, "application/octet-stream")},
                           data=fields)
    if response.status_code != 202:
        raise RuntimeError(f"upload refused: {response.status_code} {response.text}")
    return int(response.json()["id"])


def wait_state(client: httpx.Client, token: str, sid: int, states: set[str],
               timeout: float) -> float:
    """Seconds until submission `sid` is in one of `states`."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        state = client.get(f"/api/v1/submissions/{sid}",
                           headers={"Authorization": f"Bearer {token}"}).json()["state"]
        if state in states:
            return time.monotonic() - start
        time.sleep(0.1)
    raise RuntimeError(f"submission {sid} not {states} after {timeout} s")


def setup(data_dir: Path, env: dict[str, str], rows: int, teams: list[str]) -> dict[str, str]:
    """A migrated database, the test set and the teams; returns their tokens."""
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from app.config import Settings\n"
        "from app.db import make_engine, session_factory, upgrade\n"
        "from app.teams.service import create_team\n"
        "from evaluator.data.prepare import prepare_csv\n"
        "from evaluator.data.synth import write_synthetic\n"
        "data = Path(sys.argv[1]); rows = int(sys.argv[2])\n"
        "settings = Settings(); upgrade(settings)\n"
        "write_synthetic(data / 'raw', ['NL'], train_rows=0, test_rows=rows, seed=0)\n"
        "prepare_csv(data / 'raw' / 'AliExpress_NL' / 'test.csv', data / 'prepared' / 'NL')\n"
        "engine = make_engine(settings)\n"
        "with session_factory(engine)() as session:\n"
        "    for name in sys.argv[3:]:\n"
        "        team, issued = create_team(session, None, name)\n"
        "        print(name, issued.secret)\n"
        "    session.commit()\n"
    )
    out = subprocess.run([sys.executable, "-c", script, str(data_dir), str(rows), *teams],
                         cwd=ROOT, env={**env, "PYTHONPATH": str(ROOT),
                                        "LB_DATA_DIR": str(data_dir)},
                         check=True, capture_output=True, text=True).stdout
    return dict(line.split(" ", 1) for line in out.strip().splitlines())


def started_order(data_dir: Path, env: dict[str, str], ids: dict[int, str]) -> list[str]:
    script = (
        "import sys\n"
        "from sqlalchemy import select\n"
        "from app.config import Settings\n"
        "from app.db import make_engine, session_factory\n"
        "from app.models import Submission\n"
        "engine = make_engine(Settings())\n"
        "with session_factory(engine)() as s:\n"
        "    ids = [int(x) for x in sys.argv[1:]]\n"
        "    rows = s.execute(select(Submission.id).where(Submission.id.in_(ids))\n"
        "                     .order_by(Submission.started_at, Submission.id)).scalars()\n"
        "    print(' '.join(str(r) for r in rows))\n"
    )
    out = subprocess.run([sys.executable, "-c", script, *map(str, ids)], cwd=ROOT,
                         env={**env, "PYTHONPATH": str(ROOT), "LB_DATA_DIR": str(data_dir)},
                         check=True, capture_output=True, text=True).stdout
    return [ids[int(x)] for x in out.split()]


def scenarios_1_2(work: Path, base_env: dict[str, str], args: argparse.Namespace,
                  loop: bytes) -> tuple[float, float]:
    data_dir = work / "data"
    tokens = setup(data_dir, base_env, args.rows, ["hog", "victim"])
    timeout = 6 * args.wall + 120
    with Service(data_dir, base_env, work / "service.log") as service, \
            httpx.Client(base_url=service.url, timeout=120) as client:
        first = upload(client, tokens["hog"], "loop.pt", loop)
        wait_state(client, tokens["hog"], first, {"running"}, 120)
        sid = upload(client, tokens["victim"], "victim.csv", prediction_file(args.rows, 1))
        one_running = wait_state(client, tokens["victim"], sid, {"scored"}, timeout)
        backlog = [upload(client, tokens["hog"], f"loop{i}.pt", loop) for i in range(4)]
        wait_state(client, tokens["hog"], backlog[0], {"running"}, 120)
        sid = upload(client, tokens["victim"], "victim2.csv", prediction_file(args.rows, 2))
        held = wait_state(client, tokens["victim"], sid, {"scored"}, timeout)
    return one_running, held


def scenario_3(work: Path, base_env: dict[str, str], args: argparse.Namespace,
               loop: bytes) -> list[str]:
    data_dir = work / "data"
    tokens = setup(data_dir, base_env, args.rows, ["hold", "a", "b", "c"])
    ids: dict[int, str] = {}
    with Service(data_dir, base_env, work / "service.log") as service, \
            httpx.Client(base_url=service.url, timeout=120) as client:
        holds = [upload(client, tokens["hold"], f"hold{i}.pt", loop) for i in range(2)]
        for sid in holds:
            wait_state(client, tokens["hold"], sid, {"running"}, 120)
        for team in ("a", "b", "c"):
            for i in range(5):
                ids[upload(client, tokens[team], f"{team}{i}.csv",
                           prediction_file(args.rows, 10 + i))] = team
        for sid, team in ids.items():
            wait_state(client, tokens[team], sid, {"scored"}, 6 * args.wall + 300)
    return started_order(data_dir, base_env, ids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wall", type=float, default=15.0,
                        help="checkpoint wall limit in seconds")
    parser.add_argument("--rows", type=int, default=2000, help="rows of the NL test set")
    parser.add_argument("--database-url", default=None,
                        help="default: SQLite in each run's data dir")
    parser.add_argument("--redis-url", default=None, help="default: the SQLite queue file")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(dir=OUT) as tmp:
        loop = loop_checkpoint(Path(tmp) / "loop.pt")
        for mode, flag in (("fair share", "true"), ("first come, first served", "false")):
            env = {**os.environ, "LB_FAIR_SHARE": flag, "LB_DAILY_QUOTA": "1000",
                   "LB_DAILY_CHECKPOINT_FAILURES": "1000",
                   "LB_CHECKPOINT_WALL_BASE_SECONDS": str(args.wall),
                   "LB_CHECKPOINT_WALL_SECONDS_PER_MILLION_ROWS": "0",
                   "LB_REAPER_SECONDS": "5"}
            for name, value in (("LB_DATABASE_URL", args.database_url),
                                ("LB_REDIS_URL", args.redis_url)):
                if value:
                    env[name] = value
                else:
                    env.pop(name, None)
            if args.database_url or args.redis_url:
                print("note: a shared database/Redis must be empty for each run",
                      file=sys.stderr)
            work = Path(tmp) / f"{flag}-12"
            work.mkdir()
            one_running, held = scenarios_1_2(work, env, args, loop)
            work = Path(tmp) / f"{flag}-3"
            work.mkdir()
            order = scenario_3(work, env, args, loop)
            results[mode] = {"one": one_running, "held": held, "order": order}
            print(f"[{mode}] victim scored {one_running:.1f} s after its upload with one loop "
                  f"running; {held:.1f} s with both workers held and 3 loops queued; "
                  f"order of 3 x 5 jobs: {' '.join(order)}", flush=True)
    fair, fifo = results["fair share"], results["first come, first served"]
    print()
    print(f"wall limit {args.wall:g} s, 2 worker processes, {args.rows} rows")
    print(f"1. one loop running: victim's file scored in {fair['one']:.1f} s "
          f"(first come, first served {fifo['one']:.1f} s)")
    print(f"2. both workers held, a backlog of loops: scored in {fair['held']:.1f} s "
          f"(first come, first served {fifo['held']:.1f} s; ratio "
          f"{fifo['held'] / fair['held']:.2f}x)")
    print(f"3. order, fair share:              {' '.join(fair['order'])}")
    print(f"   order, first come, first served: {' '.join(fifo['order'])}")


if __name__ == "__main__":
    main()
