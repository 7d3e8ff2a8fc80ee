"""The API answers any body or query with a success or a problem+json 4xx, never a 500.

Runs the real application under uvicorn on a real SQLite store (the controller is not started,
so nothing is deployed) and throws hypothesis-generated bodies and parameters at every endpoint.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from harness import LocalApi
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


@pytest.fixture(scope="module")
def client(local_api: LocalApi) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=local_api.url, headers=local_api.headers, timeout=10) as http:
        yield http


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
fields = st.sampled_from(
    [
        "spec_yaml",
        "spec_name",
        "env",
        "version",
        "message",
        "actor",
        "supersede",
        "to_revision",
        "full",
    ]
)
bodies = st.dictionaries(fields, json_values, max_size=6) | json_values


def _check(response: Any) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["detail"]


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    path=st.sampled_from(
        ["/api/v1/deploy", "/api/v1/apps/sample/undo", "/api/v1/apps/sample/down"]
    ),
    body=bodies,
)
def test_post_bodies_never_cause_500(client: httpx.Client, path: str, body: Any) -> None:
    _check(client.post(path, json=body))


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    path=st.sampled_from(
        [
            "/api/v1/apps/{a}",
            "/api/v1/apps/{a}/revisions",
            "/api/v1/apps/{a}/revisions/{n}",
            "/api/v1/apps/{a}/events",
            "/api/v1/rollouts/{n}",
            "/api/v1/apps",
        ]
    ),
    app=st.text(alphabet="abc-_/%.", min_size=1, max_size=8),
    number=st.text(alphabet="0123456789-x", min_size=1, max_size=6),
    params=st.dictionaries(
        st.sampled_from(["env", "after", "limit", "rollout_id", "revision", "tail"]),
        st.text(max_size=8),
        max_size=3,
    ),
)
def test_reads_never_cause_500(
    client: httpx.Client, path: str, app: str, number: str, params: dict[str, str]
) -> None:
    _check(client.get(path.format(a=app, n=number), params=params))


def test_spec_text_that_is_not_a_spec_gets_located_problems(client: httpx.Client) -> None:
    response = client.post(
        "/api/v1/deploy",
        json={"spec_yaml": "app: x\nreplicas: three\n", "spec_name": "../../srv/x/baepo.yaml"},
    )
    assert response.status_code == 422
    assert response.json()["detail"].startswith("baepo.yaml: not a valid baepo spec")
    problems = {p["path"]: p for p in response.json()["problems"]}
    assert problems["replicas"]["line"] == 2
    assert "run" in problems
