"""``baepo analysis`` and ``baepo config show`` through the real CLI and server."""

from __future__ import annotations

import json

import pytest
from harness import SampleProject

pytestmark = pytest.mark.slow

JOB_TEMPLATE = """
analysis:
  smoke:
    metrics:
      - name: smoke-test
        provider: job
        job: {command: [sh, -c, "echo checking {{revision}}; exit 1"]}
        success_condition: result == 0
      - name: shadow
        provider: job
        job: {command: [sh, -c, "exit 1"]}
        success_condition: result == 0
        dry_run: true
"""


def test_analysis_shows_measurements_and_why(project: SampleProject) -> None:
    project.write("1.0.0", replicas=1)
    project.ok("deploy", "--wait")
    assert "no analysis ran for the latest rollout" in project.ok("analysis")
    project.write(
        "2.0.0", replicas=1,
        strategy="{canary: {steps: [{set_weight: 50}, {analysis: {templates: [smoke]}}]}}",
    )  # fmt: skip
    project.spec.write_text(project.spec.read_text() + JOB_TEMPLATE)
    result = project.baepo("deploy", "--wait")
    assert result.returncode == 6, result.stdout + result.stderr

    text = project.ok("analysis")
    assert "revision 2" in text
    assert "failed" in text
    assert "smoke/smoke-test" in text
    assert "passes when result == 0" in text
    assert "failure_limit 0 exceeded → rollback" in text
    assert "dry run: never acted on" in text

    runs = json.loads(project.ok("analysis", "2", "-o", "json"))
    assert len(runs) == 1
    run = runs[0]
    assert (run["kind"], run["key"], run["phase"]) == ("step", "step-1", "failed")
    metrics = {m["name"]: m for m in run["metrics"]}
    assert metrics["smoke-test"]["measurements"][0]["value"] == 1
    assert "checking 2" in metrics["smoke-test"]["measurements"][0]["output"]
    assert metrics["shadow"]["dry_run"] is True
    assert json.loads(project.ok("analysis", "1", "-o", "json")) == []


def test_config_show_lists_the_guards(project: SampleProject) -> None:
    project.write("1.0.0", replicas=1)
    text = project.ok("config", "show")
    assert "error rate above 5% (and 5 points above the baseline's) over 30s" in text
    assert "crash loop" in text
    project.spec.write_text(project.spec.read_text() + "rollback: {error_rate: off}\n")
    shown = json.loads(project.ok("config", "show", "-o", "json"))
    assert not any("error rate" in guard for guard in shown["guards"])
    assert shown["spec"]["rollback"]["error_rate"] == "off"
