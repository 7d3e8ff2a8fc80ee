"""The ``analysis:`` templates and ``rollback:`` guards of a spec: what loads, what is refused
and where, and the guards' defaults."""

from __future__ import annotations

import pytest

from baepo.analysis.templates import compile_templates
from baepo.errors import ConfigError, Problem
from baepo.expressions.conditions import compile_condition
from baepo.spec.analysis import COUNTING_RULE, MetricSpec
from baepo.spec.loader import parse_spec
from baepo.spec.models import Spec

HEAD = 'app: shop\nrun:\n  command: ["./shop"]\n'
CANARY = (
    "strategy:\n  canary:\n    steps:\n      - set_weight: 10\n"
    "      - analysis: {templates: [checks]}\n"
)
TEMPLATE = (
    "analysis:\n  checks:\n    metrics:\n      - name: errors\n        query: error_rate\n"
    "        failure_condition: canary.error_rate > 0.05\n        failure_limit: 2\n"
    "      - name: latency\n        query: p95\n"
    "        success_condition: canary.p95 <= baseline.p95 * 1.2\n"
)


def problems(text: str) -> list[Problem]:
    with pytest.raises(ConfigError) as caught:
        parse_spec(text, source="baepo.yaml")
    return caught.value.problems


def test_a_canary_with_an_analysis_template_loads() -> None:
    spec = parse_spec(HEAD + CANARY + TEMPLATE)
    template = spec.analysis["checks"]
    errors, latency = template.metrics
    assert (errors.provider, errors.query, errors.failure_limit) == ("builtin", "error_rate", 2)
    assert (errors.interval, errors.count, errors.initial_delay) == (10.0, None, 0.0)
    assert (errors.inconclusive_limit, errors.consecutive_error_limit) == (0, 4)
    assert latency.success_condition == "canary.p95 <= baseline.p95 * 1.2"
    assert errors.dry_run is False
    compiled = compile_templates(spec.analysis)
    success, failure = compiled["checks", "latency"]
    assert success is not None and failure is None
    assert success.evaluate({"canary": {"p95": 0.3}, "baseline": {"p95": 0.2}}) is False


def test_other_providers_load_with_their_sections() -> None:
    text = HEAD + (
        "analysis:\n  external:\n    args: {service: shop}\n    metrics:\n"
        "      - name: prom\n        provider: prometheus\n"
        "        prometheus: {address: 'http://127.0.0.1:9090', query: 'up'}\n"
        "        success_condition: result >= 1\n"
        "      - name: hook\n        provider: web\n        web: {url: 'http://x/ok'}\n"
        "        success_condition: result == 1\n"
        "      - name: smoke\n        provider: job\n        job: {command: [./smoke]}\n"
        "        success_condition: result == 0\n        count: 1\n"
    )
    metrics = parse_spec(text).analysis["external"].metrics
    assert [m.provider for m in metrics] == ["prometheus", "web", "job"]
    assert metrics[0].effective_query == "up"


def test_an_unknown_template_in_a_step_is_named_with_the_known_ones() -> None:
    text = HEAD + CANARY.replace("[checks]", "[checks, chekcs]") + TEMPLATE
    (found,) = problems(text)
    assert found.path == "strategy.canary.steps[1].analysis.templates[1]"
    assert found.line == 8
    assert (
        found.message
        == "no analysis template 'chekcs'; did you mean 'checks'? known templates: checks"
    )


def test_a_template_name_is_checked() -> None:
    (found,) = problems(HEAD + TEMPLATE.replace("checks:", "Checks_1:"))
    assert (found.path, found.line) == ("analysis.Checks_1", 5)
    assert "not a valid template name" in found.message


@pytest.mark.parametrize(
    ("metric", "path", "line", "message"),
    [
        (
            "provider: web\n        prometheus: {address: 'http://p', query: up}\n"
            "        web: {url: 'http://x'}\n",
            "analysis.t.metrics[0].prometheus",
            10,
            "a `prometheus:` section needs `provider: prometheus`, but provider is 'web'",
        ),
        ("provider: job\n", "analysis.t.metrics[0]", 7, "provider 'job' needs a `job:` section"),
        (
            "provider: prometheus\n        prometheus: {address: 'http://p'}\n",
            "analysis.t.metrics[0].prometheus.query",
            10,
            "provider 'prometheus' needs a query",
        ),
        (
            "query: p59\n",
            "analysis.t.metrics[0].query",
            9,
            "unknown builtin query 'p59'; did you mean 'p99'? expected one of error_rate, ",
        ),
        ("provider: builtin\n", "analysis.t.metrics[0]", 7, "provider 'builtin' needs a query"),
    ],
)
def test_provider_cross_checks_name_the_key(
    metric: str, path: str, line: int, message: str
) -> None:
    text = HEAD + (
        "analysis:\n  t:\n    metrics:\n      - name: m\n        success_condition: result > 0\n"
        f"        {metric}"
    )
    (found,) = problems(text)
    assert (found.path, found.line) == (path, line), found
    assert found.message.startswith(message)


def test_prometheus_needs_an_address() -> None:
    text = HEAD + (
        "analysis:\n  t:\n    metrics:\n      - name: m\n        success_condition: result > 0\n"
        "        provider: prometheus\n        prometheus: {query: up}\n"
    )
    (found,) = problems(text)
    assert found.path == "analysis.t.metrics[0].prometheus.address"
    assert found.message.startswith("required: ")


def test_metric_names_are_unique() -> None:
    text = HEAD + (
        "analysis:\n  t:\n    metrics:\n      - name: m\n        query: p95\n"
        "        success_condition: canary.p95 < 1\n"
        "      - name: m\n        query: p99\n        success_condition: canary.p99 < 2\n"
    )
    (found,) = problems(text)
    assert (found.path, found.line) == ("analysis.t.metrics[1].name", 10)
    assert found.message == "metric 'm' is defined twice"


def test_a_metric_needs_a_condition() -> None:
    (found,) = problems(
        HEAD + "analysis:\n  t:\n    metrics:\n      - name: n\n        query: p50\n"
    )
    assert (found.path, found.line) == ("analysis.t.metrics[0]", 7)
    assert found.message == "give success_condition, failure_condition or both"


def test_a_template_needs_a_metric() -> None:
    (found,) = problems(HEAD + "analysis:\n  t:\n    metrics: []\n")
    assert (found.path, found.message) == ("analysis.t.metrics", "needs at least 1 item(s)")


def test_a_bad_condition_is_reported_at_load_time_at_its_key_and_line() -> None:
    text = HEAD + TEMPLATE.replace("canary.p95 <= baseline", "__import__('os') or baseline")
    with pytest.raises(ConfigError) as caught:
        parse_spec(text, source="baepo.yaml")
    found = caught.value.problems
    assert [p.path for p in found] == ["analysis.checks.metrics[1].success_condition"]
    assert found[0].line == next(
        n for n, line in enumerate(text.splitlines(), 1) if "__import__" in line
    )
    with pytest.raises(ConfigError) as direct:
        compile_condition("__import__('os') or baseline.p95 * 1.2", path="x")
    assert direct.value.problems[0].message in found[0].message


def test_compiled_templates_carry_their_conditions() -> None:
    compiled = compile_templates(parse_spec(HEAD + TEMPLATE).analysis)
    assert compiled


def test_the_counting_rule_is_in_the_description() -> None:
    description = MetricSpec.model_fields["failure_limit"].description
    assert description == COUNTING_RULE
    assert "exceeds `failure_limit`" in COUNTING_RULE
    assert "`0` fails on the first failed measurement, `3` on the fourth" in COUNTING_RULE


def test_the_rollback_guards_are_on_by_default() -> None:
    rollback = parse_spec(HEAD).rollback
    assert rollback.enabled
    assert (rollback.error_rate, rollback.latency_p95, rollback.latency_vs_baseline) == (
        0.05,
        2.0,
        2.0,
    )
    assert (rollback.failed_health_checks, rollback.crash_loop) == (3, True)
    assert rollback.min_throughput_vs_baseline is None
    assert (rollback.window, rollback.watch) == (30.0, 120.0)
    assert rollback.active_guards() == [
        "error rate above 5% (and 5 points above the baseline's) over 30s",
        "p95 latency above 2s over 30s",
        "p95 latency above 200% of the baseline's (and 20ms more) over 30s",
        "3 failed health checks in a row",
        "crash loop",
    ]


def test_guards_take_either_spelling_and_off() -> None:
    text = HEAD + (
        "rollback:\n  error_rate: 0.01\n  latency_p95: off\n  latency_vs_baseline: 150%\n"
        "  failed_health_checks: false\n  crash_loop: false\n"
        "  min_throughput_vs_baseline: 0.5\n  window: 1m\n"
    )
    rollback = parse_spec(text).rollback
    assert rollback.error_rate == 0.01 and rollback.latency_vs_baseline == 1.5
    assert rollback.latency_p95 is None and rollback.failed_health_checks is None
    assert rollback.active_guards() == [
        "error rate above 1% (and 5 points above the baseline's) over 1m",
        "p95 latency above 150% of the baseline's (and 20ms more) over 1m",
        "request rate below 50% of the baseline's over 1m",
    ]
    assert parse_spec(HEAD + "rollback:\n  error_rate: 5%\n").rollback.error_rate == 0.05
    assert parse_spec(HEAD + "rollback: {enabled: false}\n").rollback.active_guards() == []


def test_guards_write_back_as_they_are_read() -> None:
    dumped = Spec.model_validate({"app": "a", "run": {"command": ["x"]}}).model_dump(mode="json")
    assert dumped["rollback"]["error_rate"] == "5%"
    assert dumped["rollback"]["latency_p95"] == "2s"
    assert dumped["rollback"]["min_throughput_vs_baseline"] == "off"


def test_an_unknown_name_in_a_condition_is_a_load_error_that_suggests_one() -> None:
    text = (
        HEAD + CANARY + TEMPLATE.replace("canary.p95 <= baseline.p95", "canary.p95 <= basline.p95")
    )
    (found,) = problems(text)
    assert found.path == "analysis.checks.metrics[1].success_condition"
    assert "unknown name 'basline'; did you mean 'baseline'?" in found.message
    assert "can use result, canary, baseline" in found.message


def test_json_constants_are_allowed_in_conditions() -> None:
    condition = compile_condition("result == true and not (result == false)")
    assert condition.names == frozenset({"result"})
    assert condition.evaluate({"result": True})
    job = TEMPLATE.replace("query: p95\n", 'provider: job\n        job: {command: ["true"]}\n')
    job = job.replace("canary.p95 <= baseline.p95 * 1.2", "passed == true and exit_code == 0")
    assert parse_spec(HEAD + CANARY + job, source="baepo.yaml").analysis["checks"]
