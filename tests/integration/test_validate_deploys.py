"""Whatever `validate` accepts, a deploy accepts (invariant 10).

Hypothesis mutates valid specs (huge numbers, long digit strings, odd durations, cron schedules
that never fire, clashing listeners, control characters), validates each in-process as `baepo
validate` does, and sends every accepted one to the real server's deploy route (real app under
uvicorn, real SQLite store) as a dry run: the answer is a success or a 4xx problem+json, never
a 5xx. A refused spec must be a ConfigError with located problems, never another exception.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml
from harness import LocalApi
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from baepo.errors import ConfigError
from baepo.spec.loader import parse_spec, spec_source

pytestmark = pytest.mark.timeout(300)

RUN = {"command": ["python3", "-m", "http.server", "{port}"]}
BASES: list[dict[str, Any]] = [
    {"app": "shop", "version": "1.0.0", "run": RUN, "replicas": 2},
    {
        "app": "shop",
        "version": "1.0.0",
        "run": RUN,
        "replicas": 3,
        "router": {"listen": "127.0.0.1:18080", "metrics_listen": "127.0.0.1:19464"},
        "strategy": {
            "canary": {
                "steps": [
                    {"set_weight": 20},
                    {"pause": {"duration": "30s"}},
                    {"analysis": {"templates": ["errors"]}},
                    {"set_weight": 60},
                    {"pause": {}},
                ],
                "max_surge": 1,
            }
        },
        "analysis": {
            "errors": {
                "metrics": [
                    {
                        "name": "error-rate",
                        "provider": "builtin",
                        "query": "error_rate",
                        "interval": "10s",
                        "count": 3,
                        "success_condition": "result < 0.05",
                    }
                ]
            }
        },
        "rollback": {"error_rate": "5%", "latency_p95": "2s", "failed_health_checks": 3},
    },
    {
        "app": "shop",
        "version": "1.0.0",
        "run": RUN,
        "router": {"listen": "127.0.0.1:18081"},
        "strategy": {
            "blue_green": {"preview_listen": "127.0.0.1:18082", "auto_promotion_seconds": "5s"}
        },
        "freeze": [{"reason": "new year", "schedule": "0 3 1 1 *", "duration": "1m"}],
        "hooks": {"pre_deploy": [{"name": "migrate", "command": ["true"], "timeout": "1m"}]},
        "checks": {"after": [{"name": "smoke", "command": ["true"], "retries": 2}]},
        "environments": {"production": {"replicas": 4, "approval": "required"}},
    },
]

DIGITS = st.integers(min_value=1, max_value=500).map(lambda n: "9" * n)
counts = st.one_of(
    st.integers(min_value=0, max_value=12),
    st.integers(min_value=-(2**70), max_value=2**70),
    DIGITS.map(int),
    st.sampled_from([100, 101, 1000, 1001, 10_000, 10_001, 2**31, 2**63]),
)
durations = st.one_of(
    st.builds(
        lambda number, unit: f"{number}{unit}",
        st.integers(min_value=0, max_value=10**15) | DIGITS,
        st.sampled_from(["", "ms", "s", "m", "h"]),
    ),
    st.floats(min_value=0, allow_infinity=True) | st.just(float("nan")),
    st.integers(min_value=0, max_value=2**70),
    st.sampled_from(["99999999999h", "8784h", "8785h", "31622400", "1.5h", "0.0001ms", "0"]),
)
schedules = st.sampled_from(
    ["0 0 30 2 *", "0 0 31 4 *", "0 0 29 2 *", "60 * * * *", "*/0 * * * *", "0 18 * * 5",
     "* * * * *", "0 0 31 2 1", "@yearly", "0 0 1 1 * 2030", "0 0 31 11 *", "59 23 31 12 *"]
)  # fmt: skip
listeners = st.builds(
    lambda host, port: f"{host}:{port}",
    st.sampled_from(["127.0.0.1", "0.0.0.0", "[::]", "[::1]", "localhost", "10.0.0.1"]),
    st.sampled_from([18080, 18081, 18082, 19464, 0, 65535, 65536, 99999]),
)
texts = st.one_of(
    st.text(max_size=20),
    st.sampled_from(
        ["1.0\x1b[31m", "[/]", "[bold]x[/bold]", "a\u202eb", "x\x85", "a\nb", "\t", "\x00"]
    ),
    DIGITS,
)
rates = st.one_of(
    st.floats(min_value=0, max_value=2), st.sampled_from(["5%", "200%", "1e400%", "off"]), counts
)
anything = st.one_of(counts, durations, listeners, texts, st.none(), st.booleans())

PATHS: dict[tuple[str | int, ...], st.SearchStrategy[Any]] = {
    ("version",): texts,
    ("replicas",): counts,
    ("progress_deadline",): durations,
    ("router", "listen"): listeners,
    ("router", "metrics_listen"): listeners,
    ("router", "drain_timeout"): durations,
    ("router", "idle_timeout"): durations,
    ("run", "stop_grace_period"): durations,
    ("health", "readiness", "interval"): durations,
    ("health", "readiness", "timeout"): durations,
    ("health", "readiness", "failure_threshold"): counts,
    ("restart", "crash_loop_restarts"): counts,
    ("restart", "backoff_max"): durations,
    ("restart", "crash_loop_window"): durations,
    ("logs", "max_bytes"): counts,
    ("logs", "backups"): counts,
    ("rollback", "error_rate"): rates,
    ("rollback", "latency_vs_baseline"): rates,
    ("rollback", "latency_p95"): durations,
    ("rollback", "failed_health_checks"): counts,
    ("rollback", "window"): durations,
    ("rollback", "watch"): durations,
    ("strategy", "canary", "steps", 0, "set_weight"): counts,
    ("strategy", "canary", "steps", 1, "pause", "duration"): durations,
    ("strategy", "canary", "max_surge"): counts,
    ("strategy", "canary", "abort_scale_down_delay"): durations,
    ("strategy", "blue_green", "preview_listen"): listeners,
    ("strategy", "blue_green", "auto_promotion_seconds"): durations,
    ("strategy", "blue_green", "scale_down_delay"): durations,
    ("strategy", "blue_green", "preview_replica_count"): counts,
    ("analysis", "errors", "metrics", 0, "count"): counts,
    ("analysis", "errors", "metrics", 0, "interval"): durations,
    ("analysis", "errors", "metrics", 0, "initial_delay"): durations,
    ("analysis", "errors", "metrics", 0, "failure_limit"): counts,
    ("freeze", 0, "schedule"): schedules,
    ("freeze", 0, "duration"): durations,
    ("freeze", 0, "reason"): texts,
    ("hooks", "pre_deploy", 0, "name"): texts,
    ("hooks", "pre_deploy", 0, "timeout"): durations,
    ("checks", "after", 0, "retries"): counts,
    ("checks", "after", 0, "timeout"): durations,
    ("environments", "production", "replicas"): counts,
    ("environments", "production", "version"): texts,
    ("environments", "production", "progress_deadline"): durations,
}


def put(doc: dict[str, Any], path: tuple[str | int, ...], value: Any) -> None:
    """Set ``value`` at ``path`` in ``doc`` where the path exists (or can be made), else do
    nothing: a mutation must land in the spec's shape to test anything."""
    here: Any = doc
    for part in path[:-1]:
        if isinstance(part, int):
            if not isinstance(here, list) or part >= len(here):
                return
            here = here[part]
        elif isinstance(here, dict):
            here = here.setdefault(part, {})
        else:
            return
    last = path[-1]
    if isinstance(last, int):
        if isinstance(here, list) and last < len(here):
            here[last] = value
    elif isinstance(here, dict):
        here[last] = value


@st.composite
def mutated_specs(draw: st.DrawFn) -> tuple[str, str]:
    doc = copy.deepcopy(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        path = draw(st.sampled_from(sorted(PATHS, key=str)))
        put(doc, path, draw(PATHS[path] if draw(st.integers(0, 9)) else anything))
    env = draw(st.sampled_from(["default", "production"]))
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=draw(st.booleans())), env


def validate(text: str, env: str) -> ConfigError | None:
    """What `baepo validate` says of ``text`` for ``env``: None when it accepts it."""
    try:
        parse_spec(text, source="baepo.yaml", env=env)
        spec_source(text)
    except ConfigError as exc:
        return exc
    return None


@pytest.fixture(scope="module")
def client(local_api: LocalApi) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=local_api.url, headers=local_api.headers, timeout=30) as http:
        yield http


def test_the_base_specs_deploy_as_a_dry_run(client: httpx.Client) -> None:
    for doc in BASES:
        text = yaml.safe_dump(doc, sort_keys=False)
        parse_spec(text)
        body = {"spec_yaml": text, "spec_name": "baepo.yaml", "dry_run": True}
        answer = client.post("/api/v1/deploy", json=body)
        assert answer.status_code == 200, answer.text
        assert answer.json()["preview"], answer.text


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=mutated_specs())
def test_whatever_validate_accepts_the_server_accepts_or_refuses_with_a_4xx(
    client: httpx.Client, case: tuple[str, str]
) -> None:
    text, env = case
    refused = validate(text, env)
    if refused is not None:
        assert refused.problems, refused
        assert all(p.message for p in refused.problems), refused
        assert str(refused).startswith("baepo.yaml: not a valid baepo spec")
        return
    body = {"spec_yaml": text, "spec_name": "baepo.yaml", "env": env, "dry_run": True}
    answer = client.post("/api/v1/deploy", json=body)
    assert answer.status_code < 500, f"{answer.status_code}: {answer.text}\n{text}"
    if answer.status_code >= 400:
        assert answer.headers["content-type"].startswith("application/problem+json"), answer.text
        assert answer.json()["detail"], answer.text


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/deploy", {"version": "1.0\x1b[31m"}, "version"),
        ("/api/v1/deploy", {"message": "x\x1b]0;owned\x07"}, "message"),
        ("/api/v1/deploy", {"override_freeze": "\u202eok"}, "override_freeze"),
        ("/api/v1/deploy", {"spec_name": "baepo\x1b[31m.yaml"}, "spec_name"),
        ("/api/v1/apps/shop/lock", {"reason": "\x9b2J"}, "reason"),
        ("/api/v1/apps/shop/reject", {"reason": "no\x00"}, "reason"),
        ("/api/v1/apps/shop/undo", {"message": "\x1b[2J"}, "message"),
    ],
)
def test_control_characters_in_api_text_are_a_422_naming_the_field(
    client: httpx.Client, path: str, body: dict[str, Any], field: str
) -> None:
    if path == "/api/v1/deploy":
        text = yaml.safe_dump(BASES[0])
        body = {"spec_yaml": text, "spec_name": "baepo.yaml", "dry_run": True, **body}
    answer = client.post(path, json=body)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    problems = answer.json()["problems"]
    assert [p["path"] for p in problems] == [field], problems
    assert "control character" in problems[0]["message"] or "one line" in problems[0]["message"]
