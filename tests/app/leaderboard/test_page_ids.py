"""Ids taken from a page's path as text (app/deps.py parse_id, the /submissions/{id} page):
checked before `int`, which refuses over 4,300 digits with an exception."""

from __future__ import annotations

from typing import Any

import pytest

from app.deps import MAX_ID, parse_id

HUGE = "9" * 4301  # past Python's int() digit limit (4300)


@pytest.mark.parametrize(("raw", "expected"), [
    ("1", 1), (str(MAX_ID), MAX_ID), (str(MAX_ID + 1), None), ("0", None),
    (HUGE, None), ("+1", None), (" 1", None), ("1_000", None), ("٣", None), ("²", None),
    ("", None)])
def test_a_page_id_is_a_positive_32_bit_ascii_number(raw: str, expected: int | None) -> None:
    assert parse_id(raw) == expected


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_submission_page_with_4301_digits_is_the_404_page(client: Any) -> None:
    response = client.get(f"/submissions/{HUGE}")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "no such submission" in response.text


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("prefix", ["/api/v1/submissions/", "/api/v1/results/"])
def test_an_api_id_with_4301_digits_is_refused_not_a_500(client: Any, make_team: Any,
                                                         prefix: str) -> None:
    _, token = make_team("alpha")
    response = client.get(prefix + HUGE, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code in (404, 422), response.text
    assert response.json()["error"] in ("not_found", "invalid")
