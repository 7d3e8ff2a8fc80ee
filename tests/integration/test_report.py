"""End to end: ``baepo report`` over real deploys, a real rollback and a real undo.

The sample app is deployed through the CLI and the local server; the report then reads the
history those operations wrote, through ``GET /api/v1/report``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import SampleProject, serving

pytestmark = pytest.mark.slow


def report(project: SampleProject, *args: str, cwd: Path | None = None) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "baepo", "report", "-o", "json", *args],
        cwd=cwd or project.root, env=project.env, capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def test_report_counts_deploys_rollbacks_and_undos(project: SampleProject, tmp_path: Path) -> None:
    project.write("1.0.0", replicas=1)
    project.ok("deploy", "--wait")
    project.wait_for(lambda s: serving(s, 1, 1), what="revision 1 serving")
    project.write("2.0.0", replicas=1, extra_env={"SAMPLE_CRASH_ON_START": "true"})
    crashed = project.baepo("deploy", "--wait")
    assert crashed.returncode == 6, crashed.stdout + crashed.stderr
    project.wait_for(lambda s: serving(s, 1, 1), what="revision 1 serving again")

    first = report(project)
    assert first["app"] == "sample"
    assert first["deployments"] == 2
    assert first["outcomes"]["healthy"] == 1
    assert first["outcomes"]["rolled_back"] == 1
    assert first["finished"] == 2
    assert first["success_rate"] == 0.5
    assert first["change_failures"] == 1
    assert first["change_failure_rate"] == 0.5
    assert first["rollbacks"] == 1
    assert first["undos"] == 0
    assert first["deploy_time"]["count"] == 1
    assert first["deploy_time"]["mean_seconds"] > 0
    assert first["time_to_restore"]["count"] == 1
    assert first["unrestored"] == 0
    assert first["downtime_seconds"] == 0.0  # rolling, max_unavailable 0: always served
    assert [(p["app"], p["env"]) for p in first["apps"]] == [("sample", "default")]

    # A healthy deploy undone right away is a change failure too.
    project.write("3.0.0", replicas=1)
    project.ok("deploy", "--wait")
    project.wait_for(lambda s: serving(s, 3, 1), what="revision 3 serving")
    project.ok("undo", "--wait")
    project.wait_for(lambda s: serving(s, 4, 1), what="the undo (revision 4) serving")

    second = report(project)
    assert second["deployments"] == 3
    assert second["success_rate"] == pytest.approx(2 / 3)
    assert second["change_failures"] == 2
    assert second["change_failure_rate"] == pytest.approx(2 / 3)
    assert second["undos"] == 1
    assert second["rollbacks"] == 2
    assert second["time_to_restore"]["count"] == 2
    assert second["downtime_seconds"] == 0.0

    # Without a baepo.yaml (state dir from BAEPO_STATE_DIR): every app.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    everything = report(project, cwd=elsewhere)
    assert everything["app"] is None
    assert everything["deployments"] == 3

    # A period before any of it is empty; an unknown environment has nothing.
    empty = report(project, "--since", "2000-01-01", "--until", "2000-02-01")
    assert empty["deployments"] == 0
    assert empty["success_rate"] is None
    assert report(project, "--env", "nowhere")["apps"] == []

    text = project.ok("report")
    assert "change failure rate" in text
    assert "66.7% (2 of 3)" in text


def test_report_refuses_bad_periods(project: SampleProject) -> None:
    project.write("1.0.0", replicas=1)
    project.ok("deploy", "--no-wait")
    bad = project.baepo("report", "--since", "yesterday")
    assert bad.returncode == 2, bad.stdout + bad.stderr
    assert "since" in bad.stderr
    url = project.server_info()["url"]
    for params, name in (
        ({"since": "soon"}, "since"),
        ({"until": "3x"}, "until"),
        ({"since": "1d", "until": "2d"}, "until"),
        ({"undo_window": "a while"}, "undo_window"),
        ({"env": "Not An Env"}, "env"),
    ):
        response = httpx.get(
            f"{url}/api/v1/report", params=params, headers=project.headers(), timeout=10
        )
        assert response.status_code == 422, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert [p["path"] for p in response.json()["problems"]] == [name]
