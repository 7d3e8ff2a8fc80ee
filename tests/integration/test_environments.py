"""Environment overlays through the real CLI and server: ``config show --env`` and a deploy to
an environment whose overlay changes the replicas and the router address."""

from __future__ import annotations

import json
from typing import Any

import pytest
from harness import SampleProject, free_port, serving, versions

pytestmark = pytest.mark.slow


def add_environments(project: SampleProject, staging_port: int) -> None:
    overlays = f"""
environments:
  staging:
    replicas: 2
    router: {{listen: "127.0.0.1:{staging_port}"}}
    run:
      env: {{SAMPLE_VERSION: "1.0.0-staging", API_TOKEN: "not-shown"}}
  production:
    replicas: 3
"""
    project.spec.write_text(project.spec.read_text() + overlays)


def test_config_show_resolves_an_environment(project: SampleProject) -> None:
    project.write("1.0.0", replicas=1)
    add_environments(project, free_port())
    shown = json.loads(project.ok("config", "show", "--env", "production", "-o", "json"))
    assert shown["env"] == "production"
    assert shown["spec"]["replicas"] == 3
    assert shown["sources"] == {"replicas": "environments.production"}

    staging = json.loads(project.ok("config", "show", "-e", "staging", "-o", "json"))
    assert staging["spec"]["replicas"] == 2
    assert staging["spec"]["run"]["env"]["API_TOKEN"] == "***"
    assert staging["sources"]["run.env.SAMPLE_VERSION"] == "environments.staging"
    assert "not-shown" not in json.dumps(staging)

    text = project.ok("config", "show", "-e", "staging")
    assert "replicas  # from environments.staging" in text
    assert "not-shown" not in text
    base = json.loads(project.ok("config", "show", "-o", "json"))
    assert (base["env"], base["spec"]["replicas"], base["sources"]) == (None, 1, {})


def test_deploy_to_an_environment_uses_its_overlay(project: SampleProject) -> None:
    project.write("1.0.0", replicas=1)
    staging_port = free_port()
    add_environments(project, staging_port)

    def staging_status() -> dict[str, Any]:
        return dict(project.api("/api/v1/apps/sample", env="staging"))

    try:
        project.ok("deploy", "-e", "staging", "--wait")
        status = staging_status()
        assert serving(status, 1, 2), status
        seen = versions(staging_port, 10)
        assert set(seen) == {"1.0.0-staging"}, seen
        project.spec.write_text(project.spec.read_text().replace("replicas: 3", "replicas: 4"))
        again = project.ok("deploy", "-e", "staging", "--wait")
        assert "nothing to deploy" in again, again

        project.ok("deploy", "--wait")
        project.wait_for(lambda s: serving(s, 1, 1), what="the default env serving 1 replica")
        assert set(versions(project.port, 5)) == {"1.0.0"}
        assert serving(staging_status(), 1, 2)
    finally:
        project.baepo("down", "-e", "staging", "--wait", "--timeout", "30", timeout=60)


def test_commands_use_the_spec_default_env(project: SampleProject) -> None:
    project.write("1.0.0", replicas=1)
    staging_port = free_port()
    add_environments(project, staging_port)
    project.spec.write_text(project.spec.read_text() + "default_env: staging\n")
    try:
        project.ok("deploy", "--wait")
        status = json.loads(project.ok("status", "-o", "json"))
        assert (status["env"], serving(status, 1, 2)) == ("staging", True), status
        assert set(versions(staging_port, 5)) == {"1.0.0-staging"}
        default = project.baepo("status", "-e", "default", "-o", "json")
        assert default.returncode == 4, default
        history = project.ok("history", "-e", "staging")
        assert "1.0.0" in history
    finally:
        project.baepo("down", "--wait", "--timeout", "30", timeout=60)
