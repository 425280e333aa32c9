"""Fuzzing the API from its own OpenAPI document (schemathesis): no input may get a 5xx, and every answer
must match the document (status, content type, headers, body schema).

Each operation gets valid (positive) and invalid (negative) requests; then a stateful run follows the
document's ``links`` from a created job or dataset to the calls that take its id.  Bounded by example
counts and a time budget so it stays well under two minutes; marked slow.
"""

from __future__ import annotations

import time

import hypothesis
import pytest
from hypothesis import HealthCheck

pytestmark = pytest.mark.slow

schemathesis = pytest.importorskip("schemathesis")
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.generation.modes import GenerationMode  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
EXAMPLES = {GenerationMode.POSITIVE: 15, GenerationMode.NEGATIVE: 15}
BUDGET_S = 45  # all operations together; each stops early once the budget is spent
SETTINGS = dict(
    deadline=None,
    database=None,
    derandomize=True,
    phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path, migrated_sqlite):
    """The app's database on each backend (overrides conftest's SQLite-only one)."""
    from tests.conftest import sqlite_copy

    if request.param == "sqlite":
        return sqlite_copy(migrated_sqlite, tmp_path / "var" / "convlab.db")
    return request.getfixturevalue("pg_store_url")


def fuzz(operation, mode, examples: int, headers, auth, deadline: float, calls: dict[str, int]) -> None:
    """Send ``examples`` generated requests of ``mode`` to ``operation`` and check each answer."""
    # Revoking is fuzzed with a throwaway token per request, so the fuzzer never revokes its own.
    revokes = operation.method.upper() == "DELETE"

    @hypothesis.settings(max_examples=examples, **SETTINGS)
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    def run(case):
        if time.monotonic() > deadline:
            return
        sent = auth.headers(f"throwaway-{time.monotonic_ns()}") if revokes else headers
        case.call_and_validate(headers=sent, checks=CHECKS)
        calls[operation.label] = calls.get(operation.label, 0) + 1

    run()


def test_fuzz_every_operation(app, auth):
    headers = auth.headers("fuzzer")
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app, headers=headers)
    deadline = time.monotonic() + BUDGET_S
    operations = [r.ok() for r in schema.get_all_operations()]
    assert len(operations) >= 12
    calls: dict[str, int] = {}
    for operation in operations:
        for mode, examples in EXAMPLES.items():
            try:
                fuzz(operation, mode, examples, headers, auth, deadline, calls)
            except hypothesis.errors.Unsatisfiable:
                # An operation with nothing a client could get wrong (no parameters, no body) has no
                # invalid requests to make; its valid ones ran above.
                assert mode is GenerationMode.NEGATIVE, operation.label
    print(calls)
    # The budget must not have cut the last operations off: every one was called.
    assert set(calls) == {op.label for op in operations}, set(calls) ^ {op.label for op in operations}


def test_fuzz_following_links(app, auth):
    headers = auth.headers("linker")
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app, headers=headers)

    followed: list[tuple[str, int]] = []

    class Machine(schema.as_state_machine()):
        def get_call_kwargs(self, case):
            return {"headers": headers}

        def after_call(self, response, case):
            followed.append((case.operation.label, response.status_code))

        def validate_response(self, response, case, **kwargs):
            case.validate_response(response, checks=CHECKS)

    hypothesis.stateful.run_state_machine_as_test(
        Machine, settings=hypothesis.settings(max_examples=15, stateful_step_count=6, **SETTINGS)
    )
    # The links were followed: a created job's id reached a call that takes one, and found the job.
    assert ("POST /api/v1/jobs", 201) in followed, followed
    assert any("{job_id}" in label and status in (200, 202, 409) for label, status in followed), followed
