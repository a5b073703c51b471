"""What the verification mark says it certifies, on the submission page."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from app_factories import World, add_team, app_client
from fastapi.testclient import TestClient

from app.models import Verification


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    yield from app_client(world)


def test_the_submission_page_says_what_the_verified_mark_certifies(
        world: World, client: TestClient) -> None:
    submission = world.submit(add_team(world.session, "a"), world.predictions(2.0))
    assert 'id="verified-note"' not in client.get(f"/submissions/{submission.id}").text
    world.session.add(Verification(submission_id=submission.id, state="done", tolerance=1e-4,
                                   verified=True))
    world.session.commit()
    html = client.get(f"/submissions/{submission.id}").text
    assert 'id="verified-note"' in html
    assert "reproduced the file's prediction on every row" in html
    assert "rows shuffled" in html
    assert "No label enters the comparison" in html
