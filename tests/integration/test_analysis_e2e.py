"""Automated analysis and rollback guards end to end: real server, router, app processes, load.

Each test deploys a good revision 1, then a revision 2 whose sample app answers with errors
(``SAMPLE_ERROR_RATE``) or not, with analysis templates or the default rollback guards, and
checks where the rollout ends: rolled back with revision 1 serving everything, paused for a
person, or healthy. Analysis runs are read from the project's SQLite store, opened read-only.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from harness import SampleProject, free_port, serving, versions
from prometheus_client.parser import text_string_to_metric_families

from baepo.cli.loadgen import LoadGenerator

pytestmark = pytest.mark.slow

NO_GUARDS: dict[str, Any] = {"enabled": False}
ANALYSIS_STEP = "{canary: {steps: [{set_weight: 50}, {analysis: {templates: [check]}}]}}"


def error_rate_metric(**overrides: Any) -> dict[str, Any]:
    """A builtin error-rate metric measured every second, three times."""
    metric: dict[str, Any] = {
        "name": "errors",
        "provider": "builtin",
        "query": "error_rate",
        "interval": "1s",
        "count": 3,
        "failure_condition": "result > 0.05",
    }
    return {**metric, **overrides}


def deploy_v2(
    project: SampleProject,
    *,
    strategy: str,
    error_rate: float = 0.0,
    metrics: list[dict[str, Any]] | None = None,
    rollback: dict[str, Any] | None = None,
    replicas: int = 1,
) -> None:
    """Write revision 2's spec (with its analysis template ``check`` and ``rollback:``
    section, when given) and deploy it without waiting."""
    project.write(
        "2.0.0",
        replicas=replicas,
        strategy=strategy,
        extra_env={"SAMPLE_ERROR_RATE": str(error_rate)},
    )
    extra = ""
    if metrics is not None:
        extra += f"analysis: {json.dumps({'check': {'metrics': metrics}})}\n"
    if rollback is not None:
        extra += f"rollback: {json.dumps(rollback)}\n"
    project.spec.write_text(project.spec.read_text() + extra)
    project.ok("deploy", "--no-wait")


def deploy_v1(project: SampleProject, replicas: int = 1) -> None:
    project.write("1.0.0", replicas=replicas)
    project.ok("deploy", "--wait")


@contextmanager
def load(project: SampleProject, rate: float = 120) -> Iterator[LoadGenerator]:
    """Bounded GET load through the router for the duration of the block."""
    gen = LoadGenerator("127.0.0.1", project.port, rate=rate, workers=4, max_seconds=120).start()
    try:
        yield gen
    finally:
        gen.stop()


def analysis_runs(project: SampleProject) -> list[dict[str, Any]]:
    """Every stored analysis run, oldest first, with its measurements."""
    path = project.state_dir / "state.db"
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    conn.row_factory = sqlite3.Row
    try:
        runs = [dict(r) for r in conn.execute("SELECT * FROM analysis_runs ORDER BY id")]
        for run in runs:
            run["measurements"] = [
                dict(m)
                for m in conn.execute(
                    "SELECT * FROM measurements WHERE run_id = ? ORDER BY id", (run["id"],)
                )
            ]
    finally:
        conn.close()
    return runs


def stored(value: Any) -> Any:
    """A JSON column's value as SQLite returns it (numbers come back as numbers)."""
    return json.loads(value) if isinstance(value, str) else value


def finished(status: dict[str, Any]) -> bool:
    return status["rollout"] is None and status["last_rollout"] is not None


def phase_is(phase: str) -> Any:
    return lambda s: bool(s.get("rollout") and s["rollout"]["phase"] == phase)


def assert_rolled_back_to_v1(project: SampleProject, replicas: int = 1) -> dict[str, Any]:
    """The last rollout is rolled back, revision 1 is stable and serves every request."""
    status = project.wait_for(finished, what="the rollout to end")
    assert status["last_rollout"]["phase"] == "rolled_back", status["last_rollout"]
    assert status["stable_revision"] == 1
    assert set(versions(project.port, 200)) == {"1.0.0"}
    project.wait_for(lambda s: serving(s, 1, replicas), what="revision 1 alone")
    return dict(status["last_rollout"])


def only_run(project: SampleProject, kind: str) -> dict[str, Any]:
    runs = [r for r in analysis_runs(project) if r["kind"] == kind]
    assert len(runs) == 1, runs
    return runs[0]


def test_bad_canary_fails_its_analysis_and_rolls_back(project: SampleProject) -> None:
    deploy_v1(project)
    with load(project):
        deploy_v2(
            project,
            strategy=ANALYSIS_STEP,
            error_rate=0.5,
            metrics=[error_rate_metric()],
            rollback=NO_GUARDS,
        )
        rollout = assert_rolled_back_to_v1(project)
    run = only_run(project, "step")
    assert run["phase"] == "failed", run
    assert run["finished_at"] is not None
    failed = [m for m in run["measurements"] if m["phase"] == "failed"]
    assert failed, run["measurements"]
    assert stored(failed[0]["value"]) > 0.05, failed[0]
    # The message quotes the measured value against the condition.
    assert "errors:" in run["message"] and "> 0.05" in run["message"], run["message"]
    assert failed[0]["message"] in run["message"]
    assert "rollback guard" not in rollout["message"]
    assert rollout["message"] == run["message"]
    # The API shows the same run, its metric's verdict and every measurement.
    [shown] = project.api("/api/v1/apps/sample/analysis")
    assert (shown["id"], shown["phase"], shown["message"]) == (run["id"], "failed", run["message"])
    [metric] = shown["metrics"]
    assert (metric["name"], metric["phase"]) == ("errors", "failed")
    assert len(metric["measurements"]) == len(run["measurements"])


def test_good_canary_passes_its_analysis_and_becomes_healthy(project: SampleProject) -> None:
    deploy_v1(project)
    with load(project) as gen:
        deploy_v2(project, strategy=ANALYSIS_STEP, metrics=[error_rate_metric()])
        status = project.wait_for(finished, what="the rollout to end")
        project.wait_for(lambda s: serving(s, 2, 1), what="revision 2 alone")
    assert gen.report.failed == 0, gen.report
    assert set(gen.report.statuses) == {200}, gen.report
    assert status["last_rollout"]["phase"] == "healthy", status["last_rollout"]
    run = only_run(project, "step")
    assert run["phase"] == "successful", run
    taken = [m for m in run["measurements"] if m["phase"] != "error"]
    assert len(taken) == 3 and all(m["phase"] == "successful" for m in taken), taken
    assert set(versions(project.port, 100)) == {"2.0.0"}


@pytest.mark.parametrize("traffic", ["gap", "none"])
def test_inconclusive_analysis_pauses_until_promote(project: SampleProject, traffic: str) -> None:
    deploy_v1(project)
    if traffic == "gap":
        # 30% errors: neither below 1% nor above 90%.
        metric = error_rate_metric(
            success_condition="result < 0.01", failure_condition="result > 0.9"
        )
        error_rate, rate = 0.3, 120.0
    else:
        metric = error_rate_metric()  # no request reaches the canary: no data
        error_rate, rate = 0.0, 0.0
    with load(project, rate=rate) if rate else _nothing():
        deploy_v2(
            project, strategy=ANALYSIS_STEP, error_rate=error_rate, metrics=[metric],
            rollback=NO_GUARDS,
        )  # fmt: skip
        paused = project.wait_for(phase_is("paused"), what="the rollout to pause")
        run = only_run(project, "step")
        assert run["phase"] == "inconclusive", run
        assert "baepo promote" in run["message"], run["message"]
        assert paused["rollout"]["message"].endswith(run["message"])
        if traffic == "none":
            assert "no requests reached revision 2" in run["message"], run["message"]
        # Paused holds the canary at its weight; the analysis does not run again.
        assert paused["canary"]["weight"] == 50
        project.ok("promote")
        status = project.wait_for(finished, what="the rollout to end")
    assert status["last_rollout"]["phase"] == "healthy", status["last_rollout"]
    assert status["stable_revision"] == 2
    assert only_run(project, "step")["phase"] == "inconclusive"


@contextmanager
def _nothing() -> Iterator[None]:
    yield None


def test_default_guards_roll_back_a_canary_with_errors_under_load(
    project: SampleProject,
) -> None:
    deploy_v1(project)
    with load(project, rate=200):
        deploy_v2(
            project, strategy="{canary: {steps: [{set_weight: 50}, {pause: {}}]}}",
            error_rate=0.3,
        )  # fmt: skip
        rollout = assert_rolled_back_to_v1(project)
    assert "rollback guard error_rate" in rollout["message"], rollout["message"]
    assert "rolling back to revision 1" in rollout["message"]
    assert analysis_runs(project) == []


def test_blue_green_post_promotion_analysis_switches_back(project: SampleProject) -> None:
    deploy_v1(project)
    strategy = (
        "{blue_green: {auto_promotion_seconds: 0s, scale_down_delay: 30s, "
        "post_promotion_analysis: {templates: [check]}}}"
    )
    with load(project):
        deploy_v2(
            project, strategy=strategy, error_rate=0.5, metrics=[error_rate_metric()],
            rollback=NO_GUARDS,
        )  # fmt: skip
        rollout = assert_rolled_back_to_v1(project)
    run = only_run(project, "post_promotion")
    assert run["phase"] == "failed", run
    assert "switching back" in run["message"], run["message"]
    assert rollout["message"] == run["message"]
    # Revision 2 did serve, between the switch and the switch back: the analysis measured it.
    assert any(m["phase"] == "failed" for m in run["measurements"])


def test_unreachable_prometheus_is_an_error_and_rolls_back(project: SampleProject) -> None:
    deploy_v1(project)
    closed = free_port()
    metric = {
        "name": "errors",
        "provider": "prometheus",
        "prometheus": {"address": f"http://127.0.0.1:{closed}", "query": "vector(0)"},
        "interval": "1s",
        "count": 3,
        "consecutive_error_limit": 1,
        "success_condition": "result < 0.05",
    }
    deploy_v2(project, strategy=ANALYSIS_STEP, metrics=[metric], rollback=NO_GUARDS)
    rollout = assert_rolled_back_to_v1(project)
    run = only_run(project, "step")
    assert run["phase"] == "error", run
    phases = [m["phase"] for m in run["measurements"]]
    assert phases == ["error", "error"], run["measurements"]
    assert "could not be taken" in run["message"], run["message"]
    assert f"127.0.0.1:{closed}" in run["message"], run["message"]
    assert rollout["message"] == run["message"]


@pytest.mark.parametrize("code", [1, 0])
def test_job_metric_decides_the_canary(project: SampleProject, code: int) -> None:
    deploy_v1(project)
    metric = {
        "name": "smoke",
        "provider": "job",
        "job": {"command": ["sh", "-c", f"echo smoke test; exit {code}"], "timeout": "10s"},
        "success_condition": "result == 0",
    }
    deploy_v2(project, strategy=ANALYSIS_STEP, metrics=[metric], rollback=NO_GUARDS)
    run_phase = "failed" if code else "successful"
    if code:
        rollout = assert_rolled_back_to_v1(project)
        assert rollout["message"] == only_run(project, "step")["message"]
    else:
        status = project.wait_for(finished, what="the rollout to end")
        assert status["last_rollout"]["phase"] == "healthy", status["last_rollout"]
        project.wait_for(lambda s: serving(s, 2, 1), what="revision 2 alone")
    run = only_run(project, "step")
    assert run["phase"] == run_phase, run
    [measurement] = run["measurements"]
    assert measurement["phase"] == run_phase
    assert "smoke test" in measurement["output"]
    assert stored(measurement["value"]) == code


def background_canary(steps: str, *, starting_step: int = 1) -> str:
    """A canary with ``steps`` and background analysis of ``check`` from ``starting_step`` (by
    default once the first ``set_weight`` step has routed traffic to the canary)."""
    return (
        f"{{canary: {{steps: {steps}, background_analysis: "
        f"{{templates: [check], starting_step: {starting_step}}}}}}}"
    )


def scraped(project: SampleProject, name: str, **labels: str) -> float:
    """The value of the server's ``/metrics`` sample ``name`` with ``labels`` (0 when absent)."""
    url = project.server_info()["url"]
    response = httpx.get(f"{url}/metrics", headers=project.headers(), timeout=30)
    response.raise_for_status()
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def test_a_background_analysis_ended_by_a_guard_is_cancelled_not_successful(
    project: SampleProject,
) -> None:
    deploy_v1(project)
    # Measurements pass (30 % is below 90 %); the default error-rate guard rolls back first.
    metric = error_rate_metric(count=5, failure_condition="result > 0.9")
    with load(project, rate=200):
        deploy_v2(
            project, strategy=background_canary("[{set_weight: 50}, {pause: {}}]"),
            error_rate=0.3, metrics=[metric],
        )  # fmt: skip
        rollout = assert_rolled_back_to_v1(project)
    assert "rollback guard error_rate" in rollout["message"], rollout["message"]
    run = only_run(project, "background")
    assert run["phase"] == "cancelled", run
    assert run["finished_at"] is not None
    assert "cancelled (the rollout was rolled back: " in run["message"], run["message"]
    assert "error_rate" in run["message"] or "error rate" in run["message"], run["message"]
    assert "paused for a person" not in run["message"]
    assert "successful" not in run["message"]
    [shown] = project.api("/api/v1/apps/sample/analysis")
    assert (shown["phase"], shown["message"]) == ("cancelled", run["message"])
    assert "cancelled" in project.ok("analysis")
    labels = {"app": "sample", "kind": "background"}
    assert scraped(project, "baepo_analysis_runs_total", verdict="cancelled", **labels) == 1
    assert scraped(project, "baepo_analysis_runs_total", verdict="successful", **labels) == 0


def test_background_analysis_watches_every_step_until_the_final_switch(
    project: SampleProject,
) -> None:
    deploy_v1(project)
    metric = error_rate_metric(count=2)  # fails above 5 % errors
    fault = project.root / "fault"
    with load(project, rate=120):
        project.write(
            "2.0.0", replicas=1,
            strategy=background_canary("[{set_weight: 25}, {pause: {duration: 2s}}, "
                                       "{set_weight: 50}, {pause: {}}]"),
            extra_env={"SAMPLE_ERROR_RATE": "0.5", "SAMPLE_FAULT_FILE": str(fault)},
        )  # fmt: skip
        extra = f"analysis: {json.dumps({'check': {'metrics': [metric]}})}\n"
        extra += f"rollback: {json.dumps(NO_GUARDS)}\n"
        project.spec.write_text(project.spec.read_text() + extra)
        project.ok("deploy", "--no-wait")

        def past_count_at_50(status: dict[str, Any]) -> bool:
            runs = [r for r in analysis_runs(project) if r["kind"] == "background"]
            return (
                phase_is("paused")(status)
                and status["canary"]["weight"] == 50
                and len(runs) == 1
                and runs[0]["phase"] == "running"
                and len(runs[0]["measurements"]) > metric["count"]
            )

        project.wait_for(past_count_at_50, what="the background analysis past its count at 50 %")
        fault.touch()  # the canary turns bad at the last step, long after `count`
        rollout = assert_rolled_back_to_v1(project)
    run = only_run(project, "background")
    assert run["phase"] == "failed", run
    assert rollout["message"] == run["message"]
    assert "rollback guard" not in rollout["message"]
    phases = [m["phase"] for m in run["measurements"]]
    assert phases[: metric["count"]] == ["successful"] * metric["count"], phases
    assert phases[-1] == "failed", phases
    # The rollout's cause is the analysis, with the condition and the measurements.
    cause = project.status()["last_rollout"]["cause"]
    assert cause is not None and cause["kind"] == "analysis", cause
    assert cause["summary"] == run["message"]
    assert "check/errors: fails when result > 0.05" in cause["evidence"]
    assert any(line.strip().startswith("failed: ") for line in cause["evidence"]), cause


def test_background_analysis_of_a_healthy_canary_ends_at_the_switch(
    project: SampleProject,
) -> None:
    deploy_v1(project)
    metric = error_rate_metric(count=2)
    with load(project, rate=120):
        deploy_v2(
            project,
            strategy=background_canary("[{set_weight: 50}, {pause: {duration: 8s}}]"),
            metrics=[metric],
        )
        status = project.wait_for(finished, what="the rollout to end")
    assert status["last_rollout"]["phase"] == "healthy", status["last_rollout"]
    run = only_run(project, "background")
    assert run["phase"] == "successful", run
    assert "ended at the final switch" in run["message"], run["message"]
    taken = [m for m in run["measurements"] if m["phase"] != "error"]
    # Measured through the whole 8 s pause (every second), not only `count` times.
    assert len(taken) >= metric["count"] + 2, run["measurements"]
    assert all(m["phase"] == "successful" for m in taken), taken


def test_an_abort_cancels_the_running_analyses_with_the_reason(project: SampleProject) -> None:
    deploy_v1(project)
    metric = error_rate_metric(count=30)
    steps = "[{set_weight: 50}, {analysis: {templates: [check]}}, {pause: {}}]"
    with load(project):
        deploy_v2(project, strategy=background_canary(steps), metrics=[metric])

        def both_measuring(status: dict[str, Any]) -> bool:
            runs = analysis_runs(project)
            return len(runs) == 2 and all(r["measurements"] for r in runs)

        project.wait_for(both_measuring, what="the step and background analyses to measure")
        project.ok("abort")
        project.wait_for(finished, what="the abort")

        def all_ended(status: dict[str, Any]) -> bool:
            return all(r["phase"] != "running" for r in analysis_runs(project))

        project.wait_for(all_ended, what="the analyses to end")
    for run in analysis_runs(project):
        assert run["phase"] == "cancelled", run
        assert "cancelled (the rollout was aborted" in run["message"], run["message"]
        assert len(run["measurements"]) < metric["count"]
