"""What the API process holds (app/main.py): an injected queue, no workers' context or code."""

from __future__ import annotations

import inspect
import subprocess
import sys
from typing import Any

import pytest
from fastapi.testclient import TestClient


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_api_enqueues_without_building_a_job_context(settings: Any, make_team: Any,
                                                         make_predictions: Any) -> None:
    from app.jobs.queue import Queue
    from app.main import create_app

    queue = Queue(settings)  # not immediate: jobs wait for a consumer
    _, token = make_team("alpha")
    with TestClient(create_app(settings, queue)) as client:
        assert client.app.state.queue is queue  # type: ignore[attr-defined]
        assert client.get("/health").json()["queue_depth"] == 0
        response = client.post("/api/v1/submissions",
                               headers={"Authorization": f"Bearer {token}"},
                               data={"country": "NL", "method": "m"},
                               files={"file": ("p.csv", make_predictions()[0])})
        assert response.status_code == 202, response.text
        assert client.get("/health").json()["queue_depth"] == 1
    assert queue._context is None
    queue.huey.flush()


def test_importing_the_api_imports_no_job_code_and_no_torch() -> None:
    script = ("import sys, app.main; "
              "print(sorted(m for m in ('torch', 'app.jobs.scoring', 'app.jobs.verification', "
              "'app.jobs.runner') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]"


def test_organiser_page_handlers_keep_the_database_off_the_event_loop() -> None:
    from app.organiser import web

    # The form is read asynchronously; every database call runs in a worker thread.
    assert not inspect.iscoroutinefunction(web.organiser_page)
    assert not inspect.iscoroutinefunction(web._act)
    for handler in (web.login, web.logout, web.action):
        source = inspect.getsource(handler)
        assert "session." not in source.replace("run_in_threadpool(session.commit)", ""), \
            handler.__name__
