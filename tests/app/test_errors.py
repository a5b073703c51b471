"""One error shape (app/errors.py): every refusal is `{"error", "detail"}`, with its status."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("path", [
    "/api/v1/submissions/" + "9" * 4301,
    "/api/v1/submissions/2147483648",
    "/api/v1/submissions/0",
    "/api/v1/submissions/abc",
    "/api/v1/results/" + "9" * 30,
    "/api/v1/teams/2147483648/tokens",
])
def test_an_id_that_cannot_exist_is_not_found(client: Any, make_team: Callable[..., Any],
                                              path: str) -> None:
    _, token = make_team("organisers", organiser=True)
    response = client.get(path, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 404, response.text
    assert response.json()["error"] == "not_found"
    assert len(response.json()["detail"]) < 100


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_bad_query_or_body_is_still_422_with_every_problem(client: Any,
                                                            make_team: Callable[..., Any]
                                                            ) -> None:
    _, token = make_team("organisers", organiser=True)
    response = client.get("/api/v1/submissions?limit=0&offset=-1",
                          headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 422
    assert response.json()["error"] == "invalid"
    assert {tuple(p["loc"]) for p in response.json()["detail"]} == {("query", "limit"),
                                                                     ("query", "offset")}


@pytest.mark.parametrize("db_url", ["sqlite", "postgres"], indirect=True)
def test_an_organiser_error_has_the_one_shape(client: Any,
                                              make_team: Callable[..., Any]) -> None:
    _, token = make_team("organisers", organiser=True)
    response = client.post("/api/v1/organiser/submissions/12345/hide",
                           headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "detail": "no submission 12345"}
