"""Upload memory: this service's streamed upload vs FastAPI's UploadFile, in the same run.

    .venv/bin/python benchmarks/bench_upload.py [--mb 500]

Starts each server as a real uvicorn subprocess and uploads the same generated file
(`--mb` MiB of `row_id,ctr,cvr` text) as multipart over HTTP, then reads the server process's
peak RSS (VmHWM, reset through /proc/PID/clear_refs just before the upload) minus its RSS
before the upload:

(a) this service: `POST /api/v1/submissions` of `app.main:create_app` (auth from headers, then
    `request.stream()` through python-multipart's streaming parser to a temp file);
(b) reference: a FastAPI endpoint with `file: UploadFile = File()` and `Form` fields, copying
    the spooled upload to disk with shutil.copyfileobj (FastAPI parses the whole form first);
(c) reference: the same UploadFile endpoint doing the common `await file.read()`.

The test set behind (a) is a small synthetic one, so the file is refused at validation
(422: larger than allowed for that many rows) after the whole body has been received and
spooled: what is measured is the receive path, which is the same for a valid file. (A valid
500 MB file needs a ~20 M-row prepared set, ~7 GB of arrays; out of reach on this machine.)
Goal for (a): < 64 MB of growth.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, File, Form, UploadFile

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out" / "bench_upload"


# ------------------------------------------------------------------------- reference servers


def naive_app(read_all: bool = False) -> Any:
    app = FastAPI()
    target = Path(os.environ["BENCH_TARGET_DIR"])

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/upload")
    async def upload(country: str = Form(), method: str = Form(),
                     file: UploadFile = File()) -> dict[str, Any]:
        path = target / "upload.bin"
        with open(path, "wb") as out:
            if read_all:
                data = await file.read()
                out.write(data)
                size = len(data)
            else:
                shutil.copyfileobj(file.file, out, 1 << 20)
                size = out.tell()
        path.unlink()
        return {"bytes": size}

    return app


def naive_copy_app() -> Any:
    return naive_app(read_all=False)


def naive_read_app() -> Any:
    return naive_app(read_all=True)


# -------------------------------------------------------------------------------- measuring


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def start(factory: str, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", factory, "--port", str(port),
         "--log-level", "warning", "--app-dir", str(ROOT / "benchmarks")],
        cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            raise RuntimeError(f"{factory} did not start")
        time.sleep(0.2)


def measure(name: str, factory: str, path: str, file: Path, env: dict[str, str],
            headers: dict[str, str]) -> dict[str, Any]:
    port = free_port()
    process = start(factory, port, env)
    try:
        before = status_kb(process.pid, "VmRSS")
        # "5" resets the peak-RSS counter, so VmHWM afterwards is the upload's own peak.
        Path(f"/proc/{process.pid}/clear_refs").write_text("5")
        started = time.perf_counter()
        with open(file, "rb") as handle:
            response = httpx.post(
                f"http://127.0.0.1:{port}{path}", headers=headers,
                data={"country": "NL", "method": "bench"},
                files={"file": ("predictions.csv", handle, "text/csv")}, timeout=600)
        seconds = time.perf_counter() - started
        peak = status_kb(process.pid, "VmHWM")
    finally:
        process.terminate()
        process.wait(timeout=30)
    return {"name": name, "status": response.status_code, "seconds": seconds,
            "rss_before_mb": before / 1024, "growth_mb": (peak - before) / 1024,
            "detail": response.text[:160]}


def write_file(path: Path, mib: int) -> None:
    line_block = "".join(f"{i},0.{i % 999983:06d},0.{(i * 7) % 999983:06d}\n"
                         for i in range(40_000)).encode()
    target = mib << 20
    with open(path, "wb") as out:
        out.write(b"row_id,ctr,cvr\n")
        written = 0
        while written < target:
            chunk = line_block[: target - written]
            out.write(chunk)
            written += len(chunk)


def prepare_service(data_dir: Path) -> str:
    """A migrated SQLite DB, a small prepared NL set and a team; returns its token."""
    os.environ["LB_DATA_DIR"] = str(data_dir)
    from app.config import Settings
    from app.db import make_engine, session_factory, upgrade
    from app.teams.service import create_team
    from evaluator.data.prepare import prepare_csv
    from evaluator.data.synth import write_synthetic

    settings = Settings()
    upgrade(settings)
    write_synthetic(data_dir / "raw", ["NL"], train_rows=0, test_rows=2000, seed=0)
    prepare_csv(data_dir / "raw" / "AliExpress_NL" / "test.csv", data_dir / "prepared" / "NL")
    engine = make_engine(settings)
    with session_factory(engine)() as session:
        _, issued = create_team(session, None, "bench")
        session.commit()
    engine.dispose()
    return issued.secret


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=500, help="upload size in MiB")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=OUT) as tmp:
        root = Path(tmp)
        data_dir = root / "data"
        token = prepare_service(data_dir)
        file = root / "upload.csv"
        write_file(file, args.mb)
        size_mb = file.stat().st_size / (1 << 20)
        env = {"LB_DATA_DIR": str(data_dir), "LB_MAX_UPLOAD_BYTES": str(2 << 30),
               "BENCH_TARGET_DIR": str(root)}
        results = [
            measure("service (streamed)", "app.main:create_app", "/api/v1/submissions",
                    file, env, {"Authorization": f"Bearer {token}"}),
            measure("UploadFile + copyfileobj", "bench_upload:naive_copy_app", "/upload",
                    file, env, {}),
            measure("UploadFile + await read()", "bench_upload:naive_read_app", "/upload",
                    file, env, {}),
        ]
    print(f"upload of {size_mb:.0f} MiB, server peak RSS growth during the upload")
    for r in results:
        print(f"  {r['name']:<26} HTTP {r['status']}  {r['seconds']:6.1f} s  "
              f"{size_mb / r['seconds']:6.0f} MiB/s  RSS before {r['rss_before_mb']:6.1f} MB  "
              f"growth {r['growth_mb']:7.1f} MB")
    service, copy, read_all = results
    ratio_copy = service["growth_mb"] / max(copy["growth_mb"], 0.1)
    ratio_read = service["growth_mb"] / max(read_all["growth_mb"], 0.1)
    print(f"  growth ratio service / UploadFile+copy: {ratio_copy:.2f}; "
          f"service / UploadFile+read(): {ratio_read:.3f}")
    print(f"  service answer: {service['detail']}")


if __name__ == "__main__":
    main()
