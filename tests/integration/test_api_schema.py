"""Schemathesis fuzzes every operation of the OpenAPI document: never a 5xx, and every answer
(success or problem+json) matches the documented status codes, content types and schemas."""

from __future__ import annotations

import schemathesis
from harness import LocalApi
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES = 60


def test_every_operation_keeps_its_contract(local_api: LocalApi) -> None:
    schema = schemathesis.openapi.from_url(f"{local_api.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
        def fuzz(case: schemathesis.Case) -> None:
            if case.path == "/api/v1/apps/{app}/logs":
                case.query = {**(case.query or {}), "follow": "false"}  # a finite answer
            case.call_and_validate(checks=CHECKS, headers=local_api.headers)

        fuzz()
