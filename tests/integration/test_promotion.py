"""``baepo promote-release`` through the real CLI and server: what passed in staging goes to
production with production's overlay; a release that has not passed is refused."""

from __future__ import annotations

import json
from typing import Any

import pytest
from harness import SampleProject, free_port, serving, versions

pytestmark = pytest.mark.slow


def write(project: SampleProject, version: str, staging: int, production: int) -> None:
    project.write(
        version, replicas=1, strategy="{canary: {steps: [{set_weight: 50}, {pause: {}}]}}"
    )
    project.spec.write_text(
        project.spec.read_text()
        + f"""
environments:
  staging:
    router: {{listen: "127.0.0.1:{staging}"}}
    strategy: rolling
  production:
    replicas: 2
    router: {{listen: "127.0.0.1:{production}"}}
    strategy: rolling
"""
    )


def test_promote_what_passed_in_staging(project: SampleProject) -> None:
    staging, production = free_port(), free_port()
    write(project, "1.0.0", staging, production)

    def status(env: str) -> dict[str, Any]:
        return dict(project.api("/api/v1/apps/sample", env=env))

    try:
        project.ok("deploy", "-e", "staging", "--wait")
        never = project.baepo(
            "promote-release", "--from", "staging", "--to", "production", "--version", "9.9"
        )
        assert never.returncode == 5 and "never deployed in staging" in never.stderr, never

        # The version in the file changes after staging passed: production still gets 1.0.0.
        write(project, "1.1.0", staging, production)
        project.ok("promote-release", "--from", "staging", "--to", "production", "--wait")
        assert serving(status("production"), 1, 2), status("production")
        assert set(versions(production, 10)) == {"1.0.0"}
        revisions = project.api("/api/v1/apps/sample/revisions", env="production")
        assert revisions[-1]["origin"] == "promotion of staging/1", revisions[-1]
        assert revisions[-1]["version"] == "1.0.0"

        # 1.1.0 is rolling out in staging but has not passed: refused, unless forced.
        project.spec.write_text(
            project.spec.read_text().replace(
                "strategy: rolling\n  prod",
                "strategy: {canary: {steps: [{set_weight: 50}, {pause: {}}]}}\n  prod",
                1,
            )
        )
        project.ok("deploy", "-e", "staging", "--no-wait")
        refused = project.baepo(
            "promote-release", "--from", "staging", "--to", "production", "--version", "1.1.0"
        )
        assert refused.returncode == 5, (refused.stdout, refused.stderr)
        assert "has not passed in staging" in refused.stderr, refused.stderr
        assert status("production")["stable_revision"] == 1
        forced = json.loads(
            project.ok(
                "promote-release",
                "--from",
                "staging",
                "--to",
                "production",
                "--version",
                "1.1.0",
                "--force",
                "hotfix",
                "--wait",
                "-o",
                "json",
            )
        )
        assert forced["rollout"]["phase"] == "healthy", forced
        assert set(versions(production, 10)) == {"1.1.0"}
        audit = json.loads(project.ok("audit", "-o", "json"))
        assert any("forced: hotfix" in a["detail"] for a in audit), audit
    finally:
        for env in ("staging", "production"):
            project.baepo("down", "-e", env, "--wait", "--timeout", "30", timeout=60)
