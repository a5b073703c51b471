"""Fair share of the workers (app/jobs/fairshare.py), as the attack of issue 14 item 2 meets it:
a team with a job running and more queued must not take a worker while another team waits, and
teams take turns (the one that ran least recently first), whatever order the messages come in."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from app.jobs import fairshare, lease
from app.jobs.context import JobContext, new_owner
from app.jobs.scoring import score_submission
from app.models import Submission


@pytest.fixture
def queued(ctx: JobContext, make_team: Any, make_predictions: Any
           ) -> Callable[[str], int]:
    """queued(team name) -> the id of a new queued NL submission of that team (valid file)."""
    teams: dict[str, int] = {}
    body = ctx.store.put_bytes(make_predictions(seed=4)[0])

    def add(name: str) -> int:
        if name not in teams:
            teams[name] = make_team(name)[0].id
        with ctx.factory() as session:
            sub = Submission(team_id=teams[name], country="NL", method="m", state="queued",
                             file_sha256=body, file_format="csv")
            session.add(sub)
            session.commit()
            return sub.id

    return add


def states(ctx: JobContext, ids: list[int]) -> dict[int, str]:
    with ctx.factory() as session:
        rows = session.execute(select(Submission.id, Submission.state)
                               .where(Submission.id.in_(ids))).all()
    return {sid: state for sid, state in rows}


def start_running(ctx: JobContext, sid: int) -> None:
    """The job is running on some other worker, its lease renewed (an endless loop)."""
    with ctx.factory() as session:
        sub = session.get(Submission, sid)
        assert sub is not None
        sub.state, sub.lease_owner, sub.attempts = "running", "elsewhere", 1
        sub.started_at = lease.utcnow()
        sub.lease_expires_at = lease.utcnow() + timedelta(hours=1)
        session.commit()


def test_a_team_with_a_running_job_does_not_take_a_second_worker_while_another_waits(
        ctx: JobContext, queued: Callable[[str], int]) -> None:
    looping = queued("hog")
    hog_next = queued("hog")
    other = queued("victim")
    start_running(ctx, looping)
    # The worker pops the hog's message (queue order), yet the waiting team's job runs.
    assert score_submission(ctx, hog_next) == "scored"
    assert states(ctx, [looping, hog_next, other]) == {
        looping: "running", hog_next: "queued", other: "scored"}
    # The hog's job runs on the next turn, the message of the victim's job serving it.
    assert score_submission(ctx, other) == "scored"
    assert states(ctx, [hog_next])[hog_next] == "scored"


def test_teams_take_turns_whatever_order_their_messages_come_in(
        ctx: JobContext, queued: Callable[[str], int]) -> None:
    ids = {name: [queued(name) for _ in range(3)] for name in ("a", "b", "c")}
    messages = ids["a"] + ids["b"] + ids["c"]  # FIFO: team a queued all of its first
    for sid in messages:
        assert score_submission(ctx, sid) == "scored"
    with ctx.factory() as session:
        ran = session.execute(select(Submission.id).order_by(Submission.started_at,
                                                             Submission.id)).scalars().all()
    team_of = {sid: name for name, sids in ids.items() for sid in sids}
    assert [team_of[sid] for sid in ran] == ["a", "b", "c"] * 3
    # Within a team, its oldest job first.
    for name, sids in ids.items():
        assert [sid for sid in ran if team_of[sid] == name] == sids


def test_a_team_alone_in_the_queue_uses_every_worker(
        ctx: JobContext, queued: Callable[[str], int]) -> None:
    first, second = queued("alone"), queued("alone")
    start_running(ctx, first)
    assert fairshare.claim_fair(ctx, second, new_owner()) == second


def test_concurrent_claims_never_give_one_team_two_workers_while_another_waits(
        ctx: JobContext, queued: Callable[[str], int]) -> None:
    for _ in range(4):
        queued("a")
    for _ in range(4):
        queued("b")
    claimed: list[int | None] = []
    barrier = threading.Barrier(4)

    def worker(named: int) -> None:
        barrier.wait()
        claimed.append(fairshare.claim_fair(ctx, named, new_owner()))

    with ctx.factory() as session:
        a_ids = session.execute(select(Submission.id).order_by(Submission.id)).scalars().all()
    threads = [threading.Thread(target=worker, args=(a_ids[i],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert None not in claimed and len(set(claimed)) == 4
    with ctx.factory() as session:
        teams = session.execute(select(Submission.team_id).where(
            Submission.state == "running")).scalars().all()
    assert sorted(teams.count(t) for t in set(teams)) == [2, 2]


def test_fair_share_off_runs_the_named_job(ctx: JobContext, queued: Callable[[str], int]
                                           ) -> None:
    looping, hog_next, other = queued("hog"), queued("hog"), queued("victim")
    start_running(ctx, looping)
    fifo = JobContext.create(ctx.settings.model_copy(update={"fair_share": False}),
                             ctx.enqueue)
    try:
        assert score_submission(fifo, hog_next) == "scored"
    finally:
        fifo.close()
    assert states(ctx, [hog_next, other]) == {hog_next: "scored", other: "queued"}
