"""Every route with an id in its path, given an id past Python's int() digit limit (4,300
digits): a 404, never a 500. The routes are read from the app, so a new one is covered too."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from app_factories import app_routes

HUGE = "9" * 4301


def id_routes(app: Any) -> list[tuple[str, str]]:
    return [(method, re.sub(r"\{\w*id\}", HUGE, path)) for method, path in app_routes(app)
            if re.search(r"\{\w*id\}", path)]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_every_id_path_with_4301_digits_is_not_found(client: Any,
                                                      make_team: Callable[..., Any]) -> None:
    _, token = make_team("organisers", organiser=True)
    routes = id_routes(client.app)
    # The pages and the API both have such routes: a census that found none proves nothing.
    assert any(p.startswith("/api/") for _, p in routes)
    assert any(not p.startswith("/api/") for _, p in routes)
    for method, path in routes:
        response = client.request(method, path, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 404, (method, path[:40], response.status_code)
