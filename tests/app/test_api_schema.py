"""Property-based API checks (Schemathesis) over every documented endpoint — the service's own,
the leaderboard's and the organiser API — with an organiser's token and with a participant's:
no 5xx, responses (status codes, bodies, content types) as the OpenAPI reference documents
them, auth never ignored, and every organiser endpoint refusing a participant."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    ignored_auth,
    negative_data_rejection,
    positive_data_acceptance,
)
from sqlalchemy import update

from app.db import make_engine, session_factory
from app.models import ApiToken

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

# Every documented operation: the service's, the leaderboard's, the organiser API.
DOCUMENTED = r"^/(api/v1/.+|health)$"
ORGANISER_ONLY = re.compile(
    r"^/api/v1/(organiser/.+|teams.*|tokens/.+|submissions/\{submission_id\}/verif.+)$")
EXAMPLES_PER_OPERATION = 12
# Operations without parameters or body have one distinct input; the rest get many.
MIN_EXAMPLES = 150


class Fuzz:
    """A scored submission to aim at, tokens kept valid between examples, and a tally."""

    def __init__(self, client: Any, make_team: Any, make_predictions: Any,
                 settings: Any) -> None:
        self.client = client
        self.settings = settings
        owner, self.participant = make_team("participant")
        organiser, self.organiser = make_team("organisers", organiser=True)
        self.team_ids = [owner.id, organiser.id]
        response = client.post(
            "/api/v1/submissions", headers={"Authorization": f"Bearer {self.participant}"},
            files={"file": ("p.csv", make_predictions(seed=3)[0], "text/csv")},
            data={"country": "NL", "method": "fuzz target"})
        assert response.status_code == 202, response.text
        self.submission_id: int = response.json()["id"]
        self.schema = schemathesis.openapi.from_asgi("/openapi.json", client.app).include(
            path_regex=DOCUMENTED)
        self.examples: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()

    def operations(self) -> list[Any]:
        operations = []
        for result in self.schema.get_all_operations():
            # An Err is a part of the schema schemathesis could not read.
            assert isinstance(result, Ok), result.err()
            operations.append(result.ok())
        return operations

    def strategy(self, operation: Any) -> Any:
        strategies = [operation.as_strategy(), operation.as_strategy(GenerationMode.NEGATIVE)]
        if "{submission_id}" in operation.path:
            # Random ids almost never exist: aim some examples at a real, scored submission.
            strategies.append(operation.as_strategy(
                path_parameters={"submission_id": self.submission_id}))
        return st.one_of(strategies)

    def restore_tokens(self) -> None:
        # The fuzzer may revoke any token id, ours included; later examples need them.
        engine = make_engine(self.settings)
        try:
            with session_factory(engine)() as session:
                session.execute(update(ApiToken).where(ApiToken.team_id.in_(self.team_ids))
                                .values(revoked_at=None))
                session.commit()
        finally:
            engine.dispose()

    def run(self, token: str, extra_checks: list[Any]) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        operations = self.operations()
        assert len(operations) >= 23
        for operation in operations:

            @given(case=self.strategy(operation))
            @hypothesis_settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None,
                                 database=None, suppress_health_check=list(HealthCheck))
            def check(case: Any) -> None:
                self.examples[case.operation.label] += 1
                try:
                    # Schema-valid is not content-valid for uploads (a prediction file must
                    # match the test set), so "valid data accepted" cannot hold. "Invalid data
                    # rejected" cannot either: unknown query parameters are ignored (FastAPI),
                    # and the token is sent on every case, also those meant to lack it
                    # (ignored_auth covers those). No 5xx, conformance and auth must hold.
                    response = case.call_and_validate(
                        headers=headers, additional_checks=[ignored_auth, *extra_checks],
                        excluded_checks=[positive_data_acceptance, negative_data_rejection])
                    self.statuses[response.status_code] += 1
                finally:
                    self.restore_tokens()

            check()

    def report(self, who: str, capsys: pytest.CaptureFixture[str]) -> int:
        total = sum(self.examples.values())
        with capsys.disabled():
            print(f"\nschemathesis ({who}): {total} examples over {len(self.examples)} "
                  f"operations; statuses {dict(sorted(self.statuses.items()))}")
        return total


@pytest.fixture
def fuzz(client: Any, make_team: Any, make_predictions: Any, settings: Any) -> Fuzz:
    return Fuzz(client, make_team, make_predictions, settings)


def test_every_endpoint_answers_as_documented_for_an_organiser(
        fuzz: Fuzz, capsys: pytest.CaptureFixture[str]) -> None:
    fuzz.run(fuzz.organiser, [])
    assert fuzz.report("organiser token", capsys) >= MIN_EXAMPLES
    assert not any(status >= 500 for status in fuzz.statuses)
    # Not all refusals: the organiser got through to the endpoints.
    assert sum(n for status, n in fuzz.statuses.items() if status < 300) >= 30


def refuses_participants(token: str) -> Any:
    def refuses_participants(ctx: Any, response: Any, case: Any) -> bool | None:
        """A participant's token on an organiser endpoint: 403 — or 401 when the case itself
        dropped or mangled the token, or 400/422 for a body malformed before any auth (FastAPI
        parses a JSON body first; the answer names no data)."""
        if ORGANISER_ONLY.match(case.operation.path) is None:
            return None
        sent = response.request.headers.get("Authorization", "")
        allowed = {403} if sent == f"Bearer {token}" else {401, 403}
        if case.body is not None:
            allowed |= {400, 422}
        if response.status_code not in allowed:
            raise AssertionError(f"{case.operation.label}: a participant got "
                                 f"{response.status_code}, not 403: {response.text[:200]}")
        return True

    return refuses_participants


def test_every_endpoint_answers_as_documented_for_a_participant(
        fuzz: Fuzz, capsys: pytest.CaptureFixture[str]) -> None:
    fuzz.run(fuzz.participant, [refuses_participants(fuzz.participant)])
    assert fuzz.report("participant token", capsys) >= MIN_EXAMPLES
    assert not any(status >= 500 for status in fuzz.statuses)
    organiser_ops = [op for op in fuzz.operations() if ORGANISER_ONLY.match(op.path)]
    assert len(organiser_ops) >= 15
    assert fuzz.statuses[403] >= len(organiser_ops)
