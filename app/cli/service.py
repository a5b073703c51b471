"""Running the service: `db upgrade`, `serve` (the API with a queue consumer) and `worker`."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys

import typer

from app.config import Settings

from .session import settings as load_settings

db_app = typer.Typer(help="Database schema (Alembic).", no_args_is_help=True)


def exit_on_sigterm() -> None:
    """Make SIGTERM unwind like Ctrl-C, so `finally` blocks stop child processes.

    Python's default SIGTERM kills without unwinding, and uvicorn re-raises the signal it caught
    once it has shut down: without this, `serve` died there and orphaned its queue consumer."""

    def terminate(_signum: int, _frame: object) -> None:
        raise SystemExit(128 + signal.SIGTERM)

    signal.signal(signal.SIGTERM, terminate)


def _die_with_parent() -> None:
    """Runs in the consumer child before exec: the kernel sends it SIGTERM if `serve` dies, even
    by SIGKILL, so no consumer outlives its API process."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _logging() -> None:
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head", help="target revision")) -> None:
    """Bring the database schema up to date (`alembic upgrade head`)."""
    from app.db import upgrade

    config = load_settings()
    upgrade(config, revision)
    typer.echo(f"database at {revision}: {config.db_url.split('@')[-1]}")


def serve(
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port"),
    consumer: bool = typer.Option(True, "--consumer/--no-consumer",
                                  help="start a queue consumer process beside the API"),
) -> None:
    """The API and the leaderboard page (uvicorn), with a queue consumer unless told not to."""
    import uvicorn

    from app.db import upgrade
    from app.main import create_app
    from app.storage import ArtifactStore

    from .processes import Supervisor

    _logging()
    config = load_settings()
    if config.auto_migrate:
        upgrade(config)
    ArtifactStore.of(config).sweep_tmp()
    supervisor: Supervisor | None = None
    exit_on_sigterm()
    if consumer:
        # A separate process: the API never imports torch or shares a crash with the worker.
        env = {**os.environ, "LB_AUTO_MIGRATE": "false"}

        def start() -> subprocess.Popen[bytes]:
            return subprocess.Popen(
                [sys.executable, "-m", "app", "worker"], env=env,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None)

        supervisor = Supervisor(start, "queue consumer",
                                on_exit=lambda process: _consumer_died(config, process.pid))
        supervisor.start()
    try:
        uvicorn.run(create_app(config), host=host, port=port, proxy_headers=True,
                    forwarded_allow_ips=os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1"))
    finally:
        if supervisor is not None:
            # The consumer finishes its jobs within the grace period, or hands them back.
            supervisor.stop(timeout_s=config.stop_grace_seconds + 15)


def _consumer_died(config: Settings, pid: int) -> None:
    """The consumer is known dead: end its leases now (the next consumer's first reaper pass
    puts them back) rather than waiting out LB_LEASE_SECONDS, and drop its heartbeat row."""
    import socket

    from app.jobs.context import JobContext, process_prefix
    from app.jobs.lease import expire_leases_of
    from app.jobs.liveness import MODELS, forget

    def nowhere(_kind: str, _row_id: int) -> None:
        raise RuntimeError("not used")

    ctx = JobContext.create(config, nowhere)
    try:
        prefix = process_prefix(socket.gethostname(), pid)
        ended = sum(expire_leases_of(ctx, model, prefix) for model in MODELS.values())
        forget(ctx.factory, prefix)
        if ended:
            logging.getLogger(__name__).warning(
                "ended %d lease(s) of the dead consumer %s", ended, pid)
    finally:
        ctx.close()


def worker(workers: int = typer.Option(0, "--workers", help="threads; 0: LB_CONSUMER_WORKERS")
           ) -> None:
    """A queue consumer: scores submissions, runs verifications and rescores, reaps leases."""
    from app.db import upgrade
    from app.jobs.liveness import ConsumerLiveness, hand_back_in_hand
    from app.jobs.queue import Queue
    from app.jobs.reaper import reap_and_requeue

    _logging()
    config = load_settings()
    if config.auto_migrate:
        upgrade(config)
    queue = Queue(config, consumer=True)
    ctx = queue.context()
    liveness = ConsumerLiveness(ctx, queue.held_ids, reap=reap_and_requeue)
    liveness.start()
    handed: list[tuple[str, int]] = []
    try:
        queue.consumer(workers=workers or None).run()
    finally:
        # Past the grace period (or on a second signal) the jobs still in hand go back to the
        # queue, no attempt spent; their threads write nothing after that.
        handed = [(str(kind), row_id) for kind, row_id in hand_back_in_hand(ctx)]
        liveness.stop()
        queue.close()
    if handed:
        # Worker threads are still inside those jobs (a checkpoint's sandbox): leave without
        # waiting for them; the sandbox's children die with this process.
        logging.shutdown()
        os._exit(0)
