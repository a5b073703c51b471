"""The challenge file's validation (pure): a bad file is refused whole, each problem with its
field; the end, the current and the next phase."""

from __future__ import annotations

from datetime import timedelta

import pytest
from app_factories import START, challenge_toml

from app.phases.schedule import Schedule, ScheduleError, parse_schedule


def problems(text: str) -> dict[str, str]:
    with pytest.raises(ScheduleError) as caught:
        parse_schedule(text)
    return dict(caught.value.problems)


PHASE = '[[phase]]\nname = "{name}"\nopens = {opens}\ncloses = {closes}\n{extra}\n'


def phase(name: str = "a", opens: str = "2026-11-01T00:00:00Z",
          closes: str = "2026-11-10T00:00:00Z", extra: str = "") -> str:
    return PHASE.format(name=name, opens=opens, closes=closes, extra=extra)


def test_a_good_file_gives_its_end_phases_and_rules() -> None:
    schedule = parse_schedule(challenge_toml(feedback="ladder", selection_limit=3))
    assert [p.name for p in schedule.phases] == ["development", "final", "post"]
    assert schedule.end == START + timedelta(days=20)
    assert (schedule.feedback, schedule.selection_limit, schedule.reveal) == ("ladder", 3,
                                                                              "at_end")
    assert schedule.current_phase(START + timedelta(days=1)).name == "development"  # type: ignore[union-attr]
    assert schedule.current_phase(START + timedelta(days=10, hours=1)) is None
    assert schedule.next_phase(START + timedelta(days=10, hours=1)).name == "final"  # type: ignore[union-attr]
    assert not schedule.ended(START + timedelta(days=19))
    assert schedule.ended(START + timedelta(days=20))
    assert schedule.is_post_challenge(START + timedelta(days=21))
    assert not schedule.is_post_challenge(START + timedelta(days=19))


def test_no_file_is_open_for_ever_with_no_end() -> None:
    schedule = Schedule.open_ended()
    assert schedule.end is None and not schedule.ended(START + timedelta(days=10_000))
    assert schedule.current_phase(START) is not None
    assert not schedule.rounds_for_participants(START)


def test_closes_before_opens_is_refused_with_its_field() -> None:
    found = problems(phase(opens="2026-11-10T00:00:00Z", closes="2026-11-01T00:00:00Z"))
    assert "phase[0].closes" in found and "not after opens" in found["phase[0].closes"]


def test_overlapping_phases_are_refused() -> None:
    found = problems(phase("a") + phase("b", opens="2026-11-05T00:00:00Z",
                                        closes="2026-11-20T00:00:00Z"))
    assert "overlaps phase 'a'" in found["phase[1].opens"]


def test_unknown_kind_is_refused() -> None:
    found = problems(phase(extra='kinds = ["file", "notebook"]'))
    assert "unknown kind 'notebook'" in found["phase[0].kinds"]


@pytest.mark.parametrize("field", ["daily_limit", "total_limit"])
def test_negative_limit_is_refused(field: str) -> None:
    found = problems(phase(extra=f"{field} = -1"))
    assert "cannot be negative" in found[f"phase[0].{field}"]


def test_every_problem_is_listed_and_nothing_is_half_accepted() -> None:
    text = ('selection_limit = 0\nfeedback = "noisy"\nreveal = "never"\ncolour = 1\n'
            + phase(opens="2026-11-01T00:00:00", extra="daily_limit = -2\nkinds = []"))
    found = problems(text)
    assert set(found) >= {"selection_limit", "feedback", "reveal", "colour", "phase[0].opens",
                          "phase[0].daily_limit", "phase[0].kinds"}
    assert "UTC offset" in found["phase[0].opens"]


def test_a_post_challenge_phase_before_the_end_and_no_phase_are_refused() -> None:
    found = problems(phase("a") + phase("p", opens="2026-11-05T00:00:00Z",
                                        closes="2026-11-06T00:00:00Z",
                                        extra="post_challenge = true"))
    assert "phase[1].opens" in found
    assert "phase" in problems("selection_limit = 2\n")
    assert "file" in problems("this is = = not toml")
