"""Property-based API checks (Schemathesis) over the service's own endpoints: no 5xx, and
responses (status codes, bodies) as the OpenAPI reference documents them, and auth that is never
ignored."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis.specs.openapi.checks import ignored_auth, positive_data_acceptance

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

# The leaderboard and organiser endpoints have their own tests; these are the service's.
OWN = r"^/(api/v1/(submissions|me|teams|tokens)|health)"


def test_service_endpoints_answer_as_documented(client: Any, make_team: Any) -> None:
    _, token = make_team("org", organiser=True)
    schema = schemathesis.openapi.from_asgi("/openapi.json", client.app).include(
        path_regex=OWN)
    headers = {"Authorization": f"Bearer {token}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    for operation in operations:

        @given(case=operation.as_strategy())
        @hypothesis_settings(max_examples=10, deadline=None, database=None,
                             suppress_health_check=list(HealthCheck))
        def check(case: Any) -> None:
            # Schema-valid is not content-valid for uploads (a prediction file must match the
            # test set), so "valid data accepted" cannot hold; everything else must.
            case.call_and_validate(headers=headers, additional_checks=[ignored_auth],
                                   excluded_checks=[positive_data_acceptance])

        check()
