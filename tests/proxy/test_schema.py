"""schemathesis against the OpenAPI schema a real server serves: no 5xx, every answer as documented.

schemathesis's own pytest loader (`schemathesis.pytest.from_fixture`) fails under pytest 9
(`'Function' object has no attribute '_nodeid'`), so the operations are driven through its
Python API: each operation's case strategy under hypothesis, each case sent to the live
server with `call_and_validate` (status code, content type, headers and body against the
schema, and no server error).
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import Case, GenerationMode
from schemathesis.checks import CheckFunction
from schemathesis.core.result import Ok
from schemathesis.schemas import APIOperation
from schemathesis.specs.openapi.checks import positive_data_acceptance

from guardrails.server import ServerSettings
from tests.proxy.conftest import V2_PATH, Proxy, RunningModel, StartProxy, credit_policy

EXAMPLES = 25
Operation = APIOperation[Any, Any, Any, Any]


def served_operations(proxy: Proxy) -> dict[str, Operation]:
    schema = schemathesis.openapi.from_url(f"{proxy.url}/schema/openapi.json")
    found = {}
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"the served schema has an invalid operation: {result.err()}"
        operation = result.ok()
        found[operation.label] = operation
    return found


@pytest.fixture(scope="module")
def operations(proxy: Proxy) -> dict[str, Operation]:
    return served_operations(proxy)


DECIDE = ["POST /v1/decide/{policy}", "POST /v1/decide/{policy}/batch"]  # the bodies can be made invalid
OPERATIONS = ["GET /health/live", "GET /health/ready", "GET /v1/policies", "GET /v1/policies/{name}"]


def test_the_schema_lists_the_decision_and_operation_routes(operations: dict[str, Operation]) -> None:
    assert set(DECIDE + OPERATIONS) <= set(operations)
    assert "GET /metrics" not in operations  # left out of the schema on purpose


def run_cases(
    operation: Operation, mode: GenerationMode, excluded: list[CheckFunction] | None = None, **strategy: Any
) -> None:
    @given(case=operation.as_strategy(generation_mode=mode, **strategy))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def check(case: Case[Operation]) -> None:
        response = case.call_and_validate(excluded_checks=excluded)
        assert response.status_code < 500
        assert "Traceback" not in response.text

    check()


def test_any_valid_request_is_answered_as_documented(operations: dict[str, Operation], ok_model: RunningModel) -> None:
    for operation in operations.values():  # every operation the server documents, admin ones included
        run_cases(operation, GenerationMode.POSITIVE)


@pytest.mark.parametrize("label", DECIDE)
def test_any_invalid_request_is_answered_as_documented(
    operations: dict[str, Operation], ok_model: RunningModel, label: str
) -> None:
    run_cases(operations[label], GenerationMode.NEGATIVE)


@pytest.mark.parametrize("label", DECIDE)
def test_any_body_for_a_real_policy_is_answered_as_documented(
    operations: dict[str, Operation], ok_model: RunningModel, label: str
) -> None:
    # The schema cannot say which fields a policy takes (policies are data), so a body that
    # fits it may still break the policy and get the documented 422: `positive_data_acceptance`
    # (schema-valid data must get a 2xx) does not hold for these operations by design.
    for mode in GenerationMode:
        run_cases(operations[label], mode, excluded=[positive_data_acceptance], path_parameters={"policy": "credit"})


def test_a_request_without_the_api_token_is_answered_as_documented(
    start_proxy: StartProxy, ok_model: RunningModel
) -> None:
    proxy = start_proxy(credit_policy("credit", ok_model.url + V2_PATH), settings=ServerSettings(api_token="secret"))
    operations = served_operations(proxy)
    for label in DECIDE:  # no token: 401
        run_cases(operations[label], GenerationMode.POSITIVE, path_parameters={"policy": "credit"})
    assert ok_model.requests == 0
