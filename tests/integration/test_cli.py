"""The CLI's surface: help with examples, init/validate/schema, logs and the API description."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from harness import SampleProject, serving, until

COMMANDS = [
    ["init"], ["validate"], ["schema"], ["deploy"], ["undo"], ["rollback"], ["down"],
    ["status"], ["history"], ["logs"], ["demo"], ["promote"], ["pause"], ["resume"],
    ["abort"], ["retry"], ["server", "start"], ["server", "stop"],
    ["server", "status"], ["ui"],
]  # fmt: skip


def baepo(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "baepo", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin", "NO_COLOR": "1", "COLUMNS": "200", "HOME": str(cwd)},
    )


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help_with_an_example(command: list[str], tmp_path: Path) -> None:
    done = baepo(*command, "--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Example" in done.stdout


def test_init_writes_a_spec_that_validates(tmp_path: Path) -> None:
    folder = tmp_path / "My Shop"
    folder.mkdir()
    done = baepo("init", cwd=folder)
    assert done.returncode == 0, done.stderr
    assert "my-shop" in (folder / "baepo.yaml").read_text()
    again = baepo("init", cwd=folder)
    assert again.returncode == 2
    assert "--force" in again.stderr
    valid = baepo("validate", "-o", "json", cwd=folder)
    assert valid.returncode == 0, valid.stderr
    assert json.loads(valid.stdout)["spec"]["app"] == "my-shop"


def test_validate_without_a_spec_says_what_to_do(tmp_path: Path) -> None:
    done = baepo("validate", cwd=tmp_path)
    assert done.returncode == 2
    assert "baepo init" in done.stderr
    assert "Traceback" not in done.stderr


def test_schema_is_json_schema(tmp_path: Path) -> None:
    done = baepo("schema", cwd=tmp_path)
    schema = json.loads(done.stdout)
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert "strategy" in schema["properties"]


def test_bad_arguments_exit_2(tmp_path: Path) -> None:
    assert baepo("status", "--output", "yaml", cwd=tmp_path).returncode == 2
    assert baepo("deploy", "--timeout", "-1", cwd=tmp_path).returncode == 2
    assert baepo("no-such-command", cwd=tmp_path).returncode == 2


@pytest.mark.slow
def test_logs_status_and_openapi(project: SampleProject) -> None:
    project.write("1.0.0", replicas=2, extra_env={"SAMPLE_ACCESS_LOG": "true"})
    project.ok("deploy", "--wait")
    project.wait_for(lambda s: serving(s, 1, 2))
    for _ in range(5):
        httpx.get(f"http://127.0.0.1:{project.port}/hello", timeout=30)
    # The probes log 20 lines a second: a tail of 50 lost the requests when the command
    # started a few seconds later on a busy machine. And the app's lines reach its log through
    # its supervisor, a moment later.
    logs = until(
        lambda: project.ok("logs", "--tail", "3000"), lambda out: "/hello" in out, "/hello logged"
    )
    assert all(line.startswith("r1-") for line in logs.splitlines())
    text = project.ok("status")
    assert "r1 (stable)" in text
    assert "2/2" in text
    server = json.loads(project.ok("server", "status", "-o", "json"))
    assert server["running"] is True
    spec = httpx.get(f"{server['url']}/openapi.json", timeout=60).json()
    assert "/api/v1/deploy" in spec["paths"]
