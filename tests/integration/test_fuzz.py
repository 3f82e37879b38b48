"""Schemathesis over the running stack's own `/openapi.json`, over real HTTP: never a 5xx, and every
answer whose status the document declares matches the declared schema (problem+json for errors).

Bounded (a few examples per operation and phase) so the suite stays quick; `bench/fuzz.py` is the
long run (≥ 5,000 requests). Each operation acts as its own user, so the per-user rate limits of one
operation do not starve the next; a 429 is a declared answer like any other 4xx.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import response_schema_conformance

from spaktok.api.auth import mint_token
from spaktok.infra.devstack import DevStack
from spaktok.settings import Settings

pytestmark = pytest.mark.integration

ADMIN_PATHS = re.compile(
    r"^/v1/(admin|audit)/|^/v1/payouts/[^/]+/(complete|fail)$|^/v1/wallet/purchases$|^/metrics$"
)
EXAMPLES_PER_OPERATION = 6  # per operation and mode (positive, negative)


@pytest.fixture(scope="module")
def api_schema(stack: DevStack) -> Any:
    schema = schemathesis.openapi.from_url(f"{stack.api_url}/openapi.json", timeout=30)
    return schema


@pytest.fixture(scope="module")
def token_for() -> Callable[[str, str], str]:
    settings_ = Settings()

    def token(method: str, path: str) -> str:
        user = "fuzz-" + re.sub(r"[^A-Za-z0-9]+", "-", f"{method}-{path}").strip("-").lower()
        roles = ["admin"] if ADMIN_PATHS.search(path) else []
        return mint_token(settings_, user[:128], roles=roles)

    return token


def _fuzz(
    operation: Any,
    mode: GenerationMode,
    token_for: Callable[[str, str], str],
    failures: list[str],
    counter: list[int],
) -> None:
    """Run one operation's generated cases of one mode; failures are collected, not raised."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        token = token_for(case.method, case.path)
        headers = {"Authorization": f"Bearer {token}"}
        counter[0] += 1
        try:
            case.call_and_validate(
                headers=headers, checks=[not_a_server_error, response_schema_conformance], timeout=30
            )
        except FailureGroup as exc:
            failures.append(f"{case.method} {case.path} ({mode.value}): {exc}\n{case.as_curl_command()}")

    run()


def test_api_never_answers_5xx_and_matches_its_document(
    api_schema: Any, token_for: Callable[[str, str], str]
) -> None:
    # schemathesis's lazy pytest loader (`from_fixture`) needs pytest < 9, so the operations are
    # driven here: every operation, positive and negative cases, all failures collected then shown
    failures: list[str] = []
    counter = [0]  # calls made
    operations = 0
    for result in api_schema.get_all_operations():
        operation = result.ok()
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _fuzz(operation, mode, token_for, failures, counter)
            except Unsatisfiable:
                continue  # e.g. no negative case exists for an operation without parameters
    calls = counter[0]
    assert operations > 50 and calls >= operations * EXAMPLES_PER_OPERATION  # the run did happen
    assert not failures, "\n\n".join(failures[:20]) + f"\n\n{len(failures)} failures in {calls} calls"
