"""The leaderboard's HTTP API and pages on the real application (app/leaderboard/router.py)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from app_factories import World, add_team, app_client
from fastapi import FastAPI
from fastapi.testclient import TestClient
from leaderboard_factories import parse

from app.organiser import service as organiser

XSS = "<script>alert(1)</script>"
FORMULA = '=HYPERLINK("http://evil.example","x")'


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    yield from app_client(world)


def test_json_leaderboard_lists_the_scored_entry(world: World, client: TestClient) -> None:
    submission = world.submit(add_team(world.session, "team a"), world.predictions(2.0))
    response = client.get("/api/v1/leaderboard")
    assert response.status_code == 200
    data = response.json()
    assert data["split"] == "public"
    (entry,) = data["entries"]
    assert entry["team"] == "team a"
    assert entry["cells"]["NL"]["ctr"]["submission_id"] == submission.id
    assert {r["source"] for r in data["reported"]} == {"challenge", "mtreclib"}


def test_country_leaderboard_as_csv_neutralises_formulas(world: World,
                                                        client: TestClient) -> None:
    world.submit(add_team(world.session, FORMULA), world.predictions(2.0))
    response = client.get("/api/v1/leaderboard/nl", params={"format": "csv"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = [r for r in csv.DictReader(io.StringIO(response.text)) if r["kind"] == "measured"]
    assert rows[0]["team"] == "'" + FORMULA
    assert "NL_ctr_auc" in rows[0]


def test_unknown_country_is_a_404_with_the_error_shape(client: TestClient) -> None:
    response = client.get("/api/v1/leaderboard/XX")
    assert response.status_code == 404
    assert response.json()["error"] == "unknown_country"
    assert "NL" in response.json()["detail"]


def test_unknown_ranking_mode_is_refused(client: TestClient) -> None:
    assert client.get("/api/v1/leaderboard", params={"rank": "best"}).status_code == 422


def test_pages_escape_hostile_team_names(world: World, client: TestClient) -> None:
    submission = world.submit(add_team(world.session, XSS), world.predictions(2.0),
                              method=FORMULA)
    for path in ("/", "/country/NL", f"/submissions/{submission.id}"):
        response = client.get(path)
        assert response.status_code == 200, path
        page = parse(response.text)
        assert "script" not in page.tags, path
        assert XSS in "".join(page.text), path


def test_country_page_draws_intervals_and_the_scatter(world: World,
                                                     client: TestClient) -> None:
    world.submit(add_team(world.session, "a"), world.predictions(2.0))
    world.submit(add_team(world.session, "b"), world.predictions(1.0))
    html = client.get("/country/NL").text
    assert parse(html).tags.count("svg") == 4
    assert "ci-bar" in html
    assert "pareto-front" in html or "non-dominated" in html


def test_submission_page_draws_three_roc_curves(world: World, client: TestClient) -> None:
    submission = world.submit(add_team(world.session, "a"), world.predictions(2.0))
    html = client.get(f"/submissions/{submission.id}").text
    assert html.count("class='roc-curve'") == 3


def test_hidden_submission_is_not_shown(world: World, client: TestClient) -> None:
    submission = world.submit(add_team(world.session, "a"), world.predictions(2.0))
    organiser.set_hidden(world.session, None, submission.id, True)
    world.session.commit()
    assert client.get(f"/submissions/{submission.id}").status_code == 404
    assert client.get(f"/api/v1/results/{submission.id}").status_code == 404
    assert client.get("/api/v1/leaderboard").json()["entries"] == []


def test_results_show_only_the_public_split_before_the_reveal(world: World,
                                                             client: TestClient) -> None:
    submission = world.submit(add_team(world.session, "a"), world.predictions(2.0))
    before = client.get(f"/api/v1/results/{submission.id}").json()
    assert set(before["scores"]) == {"public"}
    organiser.set_revealed(world.session, None, True)
    world.session.commit()
    after = client.get(f"/api/v1/results/{submission.id}").json()
    assert set(after["scores"]) == {"public", "private", "full"}
    assert client.get("/api/v1/leaderboard").json()["split"] == "private"


def test_unknown_country_page_is_a_friendly_404(client: TestClient) -> None:
    response = client.get("/country/<b>x</b>")
    assert response.status_code == 404
    assert "<b>x</b>" not in response.text


def test_stylesheet_is_served_and_nothing_else(client: TestClient) -> None:
    assert client.get("/static/style.css").headers["content-type"].startswith("text/css")
    assert client.get("/static/../config.py").status_code == 404
    assert client.get("/static/secret.txt").status_code == 404


def test_unchanged_board_answers_304_to_its_etag(world: World, client: TestClient) -> None:
    world.submit(add_team(world.session, "a"), world.predictions(2.0))
    first = client.get("/api/v1/leaderboard")
    etag = first.headers["etag"]
    again = client.get("/api/v1/leaderboard", headers={"If-None-Match": etag})
    assert again.status_code == 304
    world.submit(add_team(world.session, "b"), world.predictions(2.0))
    changed = client.get("/api/v1/leaderboard", headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag


def test_board_is_sent_gzipped_to_clients_that_accept_it(world: World,
                                                        client: TestClient) -> None:
    world.submit(add_team(world.session, "a"), world.predictions(2.0))
    zipped = client.get("/", headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"
    plain = client.get("/", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert zipped.text == plain.text  # the client decompressed the same page


def test_fresh_cache_is_served_without_asking_the_database(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.settings.leaderboard_check_seconds = 3600
    clients = app_client(world)
    client = next(clients)
    try:
        world.submit(add_team(world.session, "a"), world.predictions(2.0))
        assert len(client.get("/api/v1/leaderboard").json()["entries"]) == 1
        world.submit(add_team(world.session, "b"), world.predictions(2.0))
        # Within the freshness window the cached board stands ...
        assert len(client.get("/api/v1/leaderboard").json()["entries"]) == 1
        assert isinstance(client.app, FastAPI)
        client.app.state.leaderboard.invalidate()
        # ... and an organiser action (which invalidates) shows the change at once.
        assert len(client.get("/api/v1/leaderboard").json()["entries"]) == 2
    finally:
        clients.close()
        world.close()


@pytest.mark.parametrize("raw", ["99999999999999999999", "-1", "0", "1e3", "٣"])
def test_impossible_submission_ids_are_refused_not_crashed(client: TestClient, raw: str) -> None:
    assert client.get(f"/submissions/{raw}").status_code == 404
    assert client.get(f"/api/v1/results/{raw}").status_code in (404, 422)
