"""The server's ``GET /metrics``, the Grafana dashboard and the Prometheus rules under deploy/.

The end-to-end test deploys the sample app twice through the real CLI and server (a healthy
revision 1, then a canary whose analysis fails and is rolled back) while a real Prometheus
scrapes the server with ``deploy/prometheus/baepo-rules.yml`` loaded; it reads the metrics
directly, checks the rules evaluate without error and the rollback alerts fire, and runs
every PromQL expression of ``deploy/grafana/baepo.json`` on that Prometheus. ``promtool``
checks and unit-tests the rules (skipped without it, failed under ``CI=true``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import ROOT, SampleProject, free_port, serving
from prometheus import PrometheusServer, prometheus_server
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from baepo import __version__
from baepo.cli.loadgen import LoadGenerator

RULES = ROOT / "deploy" / "prometheus" / "baepo-rules.yml"
RULES_TEST = ROOT / "deploy" / "prometheus" / "baepo-rules.test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "baepo.json"
SAMPLE = {"app": "sample", "env": "default"}
OUTCOMES = {"succeeded", "rolled_back", "aborted", "failed", "superseded"}
ANALYSIS_STEP = "{canary: {steps: [{set_weight: 50}, {analysis: {templates: [check]}}]}}"
ERRORS = {
    "name": "errors",
    "provider": "builtin",
    "query": "error_rate",
    "interval": "1s",
    "count": 3,
    "failure_condition": "result > 0.05",
}
# Grafana's variables, replaced as Grafana would with "All" selected and a 1 h range.
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "1m",
    "$__range": "1h",
    "$app": ".*",
    "$env": ".*",
    "$job": ".*",
}


def scrape(url: str, headers: dict[str, str]) -> dict[str, list[Sample]]:
    """The samples of ``url``/metrics by family name (checks the content type)."""
    response = httpx.get(f"{url}/metrics", headers=headers, timeout=10)
    response.raise_for_status()
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {f.name: f.samples for f in text_string_to_metric_families(response.text)}


def values(samples: list[Sample], name: str, **labels: str) -> dict[tuple[str, ...], float]:
    """Samples called ``name`` whose labels include ``labels``, keyed by their other labels."""
    found = {}
    for s in samples:
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
            rest = tuple(f"{k}={v}" for k, v in sorted(s.labels.items()) if k not in labels)
            found[rest] = s.value
    return found


def one(samples: list[Sample], name: str, **labels: str) -> float:
    found = values(samples, name, **labels)
    assert len(found) == 1, (name, labels, found)
    return next(iter(found.values()))


def require_promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        message = "promtool is not installed: run make test (the prometheus package has it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


def dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def grafana_to_promql(expr: str) -> str:
    for name in sorted(GRAFANA_VARIABLES, key=len, reverse=True):
        expr = expr.replace(name, GRAFANA_VARIABLES[name])
    assert "$" not in expr, expr
    return expr


# -- files under deploy/ -------------------------------------------------------------------


def test_promtool_checks_and_unit_tests_the_rules() -> None:
    promtool = require_promtool()
    for argv in (["check", "rules", str(RULES)], ["test", "rules", str(RULES_TEST)]):
        done = subprocess.run(
            [promtool, *argv],
            cwd=RULES.parent,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "SUCCESS" in done.stdout + done.stderr


def test_the_dashboard_is_a_grafana_dashboard_on_a_prometheus_variable() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"]
    assert 36 <= dashboard["schemaVersion"] <= 41
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("app", "env", "job"):
        assert variables[name]["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    graphs = [p for p in dashboard["panels"] if p["type"] != "row"]
    titles = " ".join(p["title"].lower() for p in graphs)
    for topic in ("outcome", "failure rate", "duration", "rollback", "active", "weight"):
        assert topic in titles, topic
    for topic in ("verdict", "reconcile", "requests", "error ratio", "p95 latency"):
        assert topic in titles, topic
    for panel in graphs:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel
        assert panel["targets"], panel["title"]
        assert {"x", "y", "w", "h"} <= panel["gridPos"].keys()
        for target in panel["targets"]:
            assert target["expr"].strip() and target["refId"], panel["title"]
            assert target["datasource"]["uid"] == "${datasource}"
    exprs = " ".join(dashboard_exprs())
    for metric in (
        "baepo_deployments_total",
        "baepo_rollout_duration_seconds_bucket",
        "baepo_time_to_rollback_seconds_bucket",
        "baepo_active_rollouts",
        "baepo_traffic_weight",
        "baepo_analysis_runs_total",
        "baepo_reconcile_duration_seconds_bucket",
        "baepo_router_requests_total",
        "baepo_router_request_duration_seconds_bucket",
    ):
        assert metric in exprs, metric
    # Every panel of an app follows the app and env variables.
    for expr in dashboard_exprs():
        if re.search(r"baepo_(deployments|rollout|time_to|active|traffic|analysis|router)", expr):
            assert 'app=~"$app"' in expr and 'env=~"$env"' in expr, expr


# -- end to end ----------------------------------------------------------------------------


def load_rules(prom: PrometheusServer) -> None:
    """Add the rules file to the running Prometheus' config and reload it (SIGHUP)."""
    config = prom.root / "prometheus.yml"
    config.write_text(config.read_text() + f"rule_files:\n  - {json.dumps(str(RULES))}\n")
    prom.proc.send_signal(signal.SIGHUP)


def rule_groups(prom: PrometheusServer) -> list[dict[str, Any]]:
    response = httpx.get(f"{prom.address}/api/v1/rules", timeout=10)
    response.raise_for_status()
    groups: list[dict[str, Any]] = response.json()["data"]["groups"]
    return groups


def wait_rules_evaluated(prom: PrometheusServer, timeout: float = 60) -> list[dict[str, Any]]:
    """Until every rule of the file is loaded and has been evaluated at least three times."""
    expected = sum(
        1 for line in RULES.read_text().splitlines() if re.match(r"\s+- (record|alert):", line)
    )
    deadline = time.monotonic() + timeout
    first: dict[str, str] = {}
    rules: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        rules = [r for g in rule_groups(prom) for r in g["rules"]]
        for rule in rules:
            if not rule.get("lastEvaluation", "").startswith("0001"):
                first.setdefault(rule["name"], rule["lastEvaluation"])
        evaluated = [
            r for r in rules if first.get(r["name"], r["lastEvaluation"]) != r["lastEvaluation"]
        ]
        if len(rules) == expected and len(evaluated) == expected:
            time.sleep(2)  # a couple more evaluation intervals
            return [r for g in rule_groups(prom) for r in g["rules"]]
        time.sleep(0.5)
    raise AssertionError(f"rules not all evaluated: {rules}\n{prom.log()}")


def write_spec(project: SampleProject, version: str, metrics_port: int, **kwargs: Any) -> None:
    """The project's spec, its router serving Prometheus metrics on ``metrics_port``."""
    project.write(version, replicas=1, **kwargs)
    text = project.spec.read_text()
    listen = f'  metrics_listen: "127.0.0.1:{metrics_port}"\n'
    project.spec.write_text(
        text.replace("  drain_timeout: 10s\n", "  drain_timeout: 10s\n" + listen)
    )


@pytest.fixture
def metrics_port() -> int:
    return free_port()


@pytest.fixture
def load_v1(project: SampleProject, metrics_port: int) -> Iterator[LoadGenerator]:
    """Revision 1 deployed and healthy, with bounded GET load through its router."""
    write_spec(project, "1.0.0", metrics_port)
    project.ok("deploy", "--wait")
    project.wait_for(lambda s: serving(s, 1, 1), what="revision 1 serving")
    gen = LoadGenerator("127.0.0.1", project.port, rate=100, workers=4, max_seconds=180)
    gen.start()
    try:
        yield gen
    finally:
        gen.stop()


@pytest.mark.slow
def test_server_metrics_rules_and_dashboard_on_a_real_prometheus(
    project: SampleProject, load_v1: LoadGenerator, metrics_port: int, tmp_path: Path
) -> None:
    url = str(project.server_info()["url"])
    host_port = url.removeprefix("http://").rstrip("/")
    first = scrape(url, project.headers())
    assert one(first["baepo_deployments"], "baepo_deployments_total", outcome="succeeded") == 1
    assert one(first["baepo_build_info"], "baepo_build_info", version=__version__) == 1

    # Prometheus scrapes with a viewer token, as docs/auth.md says.
    viewer = project.ok("token", "create", "--name", "prometheus", "--role", "viewer", "--env", "*")
    targets = [host_port, f"127.0.0.1:{metrics_port}"]
    with prometheus_server(tmp_path / "prometheus", targets, credentials=viewer.strip()) as prom:
        load_rules(prom)
        wait_rules_evaluated(prom)
        # Prometheus has seen revision 1's deployment and no rollback yet.
        prom.wait_for(
            'baepo_deployments_total{app="sample",outcome="rolled_back"} == 0',
            lambda result: len(result) == 1,
            what="the rolled_back series at 0",
        )

        # Revision 2: a canary at 50 % whose analysis sees errors, hence rolled back.
        write_spec(
            project,
            "2.0.0",
            metrics_port,
            strategy=ANALYSIS_STEP,
            extra_env={"SAMPLE_ERROR_RATE": "1.0"},
        )
        extra = {"analysis": {"check": {"metrics": [ERRORS]}}, "rollback": {"enabled": False}}
        project.spec.write_text(
            project.spec.read_text() + "".join(f"{k}: {json.dumps(v)}\n" for k, v in extra.items())
        )
        project.ok("deploy", "--no-wait")
        seen_progressing = False
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            families = scrape(url, project.headers())
            active = values(families["baepo_active_rollouts"], "baepo_active_rollouts", **SAMPLE)
            if active.get(("phase=progressing",)) == 1:
                seen_progressing = True
                started = families["baepo_rollout_started_timestamp_seconds"]
                assert one(started, started[0].name, revision="2", **SAMPLE) <= time.time()
            done = values(families["baepo_deployments"], "baepo_deployments_total", **SAMPLE)
            if done[("outcome=rolled_back",)] == 1:
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"revision 2 never rolled back: {project.status()}")
        assert seen_progressing
        project.wait_for(lambda s: serving(s, 1, 1), what="revision 1 alone again")

        # The server's own numbers.
        families = scrape(url, project.headers())
        deployments = values(families["baepo_deployments"], "baepo_deployments_total", **SAMPLE)
        assert deployments == {
            ("outcome=succeeded",): 1,
            ("outcome=rolled_back",): 1,
            ("outcome=aborted",): 0,
            ("outcome=failed",): 0,
            ("outcome=superseded",): 0,
        }
        durations = families["baepo_rollout_duration_seconds"]
        for outcome in ("succeeded", "rolled_back"):
            name = "baepo_rollout_duration_seconds_count"
            assert one(durations, name, outcome=outcome, **SAMPLE) == 1
            assert one(durations, "baepo_rollout_duration_seconds_sum", outcome=outcome) > 0
            inf = one(
                durations, "baepo_rollout_duration_seconds_bucket", outcome=outcome, le="+Inf"
            )
            assert inf == 1
        to_rollback = families["baepo_time_to_rollback_seconds"]
        assert one(to_rollback, "baepo_time_to_rollback_seconds_count", **SAMPLE) == 1
        seconds = one(to_rollback, "baepo_time_to_rollback_seconds_sum", **SAMPLE)
        assert 1 <= seconds < 120  # at least the analysis' three measurements a second apart
        runs = values(families["baepo_analysis_runs"], "baepo_analysis_runs_total", **SAMPLE)
        assert runs[("kind=step", "verdict=failed")] == 1, runs
        assert sum(runs.values()) == 1, runs
        active = values(families["baepo_active_rollouts"], "baepo_active_rollouts", **SAMPLE)
        assert set(active) == {
            (f"phase={p}",)
            for p in ("awaiting_approval", "pending", "progressing", "paused", "promoting")
        }
        assert set(active.values()) == {0}
        assert not families["baepo_rollout_started_timestamp_seconds"]
        weights = values(families["baepo_traffic_weight"], "baepo_traffic_weight", **SAMPLE)
        assert set(weights) == {("revision=1",)} and weights[("revision=1",)] > 0, weights
        passes = one(families["baepo_reconcile_passes"], "baepo_reconcile_passes_total")
        assert passes > 10
        reconcile = families["baepo_reconcile_duration_seconds"]
        assert 0 < one(reconcile, "baepo_reconcile_duration_seconds_count") <= passes
        # docs/behaviour.md lists every family.
        documented = (ROOT / "docs" / "behaviour.md").read_text()
        for name in families:
            assert f"`{name}`" in documented or f"`{name}_total`" in documented, name

        # Prometheus: the rollback alerts fire, every rule evaluates without error.
        firing = prom.wait_for(
            'ALERTS{alertstate="firing",app="sample"}',
            lambda result: (
                {r["metric"]["alertname"] for r in result}
                >= {"BaepoRollbackFired", "BaepoDeploymentFailureRateHigh"}
            ),
            what="the rollback alerts firing",
        )
        assert all(r["metric"]["severity"] == "warning" for r in firing), firing
        rules = wait_rules_evaluated(prom)
        for rule in rules:
            assert rule["health"] == "ok" and not rule.get("lastError"), rule
        ratio = prom.query('app_env:baepo_change_failure_rate:ratio1h{app="sample"}')
        assert len(ratio) == 1 and float(ratio[0]["value"][1]) > 0.2, ratio

        # Every expression of the dashboard is valid PromQL for this Prometheus.
        for expr in dashboard_exprs():
            response = httpx.get(
                f"{prom.address}/api/v1/query",
                params={"query": grafana_to_promql(expr)},
                timeout=10,
            )
            assert response.status_code == 200, (expr, response.text)
            assert response.json()["status"] == "success", (expr, response.text)
        # The router panels show both revisions: the canary had half the requests for a while.
        (rate,) = [e for e in dashboard_exprs() if "rate(baepo_router_requests_total{" in e][:1]
        per_revision = prom.query(grafana_to_promql(rate))
        assert {r["metric"]["revision"] for r in per_revision} == {"1", "2"}, per_revision
