"""How the CLI finds the server of a state directory: real CLI processes, a real server.

A ``server.json`` deleted while the server runs does not hide it (the lock file holds the same
record), and commands that start the server on demand at the same moment all succeed with one
server between them.
"""

from __future__ import annotations

import json
import subprocess
import sys

from harness import SampleProject

from baepo.shell.process import pid_alive


def server_processes(project: SampleProject) -> list[int]:
    marker = f"--state-dir {project.state_dir}"
    return [pid for pid, cmdline in project.processes() if "server start" in cmdline
            and marker in cmdline]  # fmt: skip


def test_a_deleted_server_json_does_not_hide_the_running_server(project: SampleProject) -> None:
    project.write("1.0")
    project.ok("server", "start")
    running = project.server_info()
    (project.state_dir / "server.json").unlink()

    assert "no revisions" in project.ok("history")
    status = json.loads(project.ok("server", "status", "-o", "json"))
    assert status["running"] is True
    assert (status["pid"], status["url"]) == (running["pid"], running["url"])
    assert "already runs" in project.ok("server", "start")
    assert server_processes(project) == [running["pid"]]

    assert f"server {running['pid']} stopped" in project.ok("server", "stop")
    assert not pid_alive(running["pid"])


def test_commands_starting_the_server_at_the_same_moment_all_succeed(
    project: SampleProject,
) -> None:
    project.write("1.0")
    commands = [["history"], ["history"], ["server", "start"]]
    started = [
        subprocess.Popen(
            [sys.executable, "-m", "baepo", *args],
            cwd=project.root,
            env=project.env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for args in commands
    ]
    results = [(p.wait(timeout=120), *p.communicate()) for p in started]
    for args, (code, out, err) in zip(commands, results, strict=True):
        assert code == 0, f"baepo {' '.join(args)}: {out}\n{err}"
    status = json.loads(project.ok("server", "status", "-o", "json"))
    assert server_processes(project) == [status["pid"]]
