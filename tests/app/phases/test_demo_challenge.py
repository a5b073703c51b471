"""The demo's challenge file: valid, a development phase open at the demo's start, an end, and
a post-challenge phase after it."""

from __future__ import annotations

from datetime import timedelta

from app_factories import START

from app.cli.demo import DEMO_DAYS, challenge_file_text
from app.phases.schedule import parse_schedule


def test_demo_file_opens_now_ends_later_and_has_a_post_challenge_phase() -> None:
    schedule = parse_schedule(challenge_file_text(START))
    current = schedule.current_phase(START)
    assert current is not None and current.name == "development"
    assert schedule.end is not None and schedule.end > START + timedelta(days=DEMO_DAYS - 1)
    after = schedule.current_phase(schedule.end + timedelta(days=1))
    assert after is not None and after.post_challenge
    assert schedule.feedback == "ladder"
