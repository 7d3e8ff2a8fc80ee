"""``baepo hosts plan``, the real CLI: the plan of a spec file's deploy, nothing run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_baepo_hosts_plan_prints_the_plan_of_a_spec_file(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("print(1)\n")
    (tmp_path / "baepo.yaml").write_text(
        "app: shop\n"
        'run: {command: ["python3", "app.py", "--port", "{port}"]}\n'
        "replicas: 2\n"
        "secrets: {TOKEN: shop-token}\n"
        "target: {kind: hosts, hosts: [{address: 10.0.0.11}, {address: 10.0.0.12}]}\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "baepo", "hosts", "plan", "-f", str(tmp_path / "baepo.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 12
    assert lines[-2].startswith("root@10.0.0.11  $ python3 /srv/baepo/.baepo/agent.py start ")
    assert lines[-1].startswith("root@10.0.0.12  $ python3 /srv/baepo/.baepo/agent.py start ")
    assert lines[-1].endswith("< (instance JSON, secrets redacted)")


def test_hosts_plan_runs_the_agent_with_target_python(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("print(1)\n")
    (tmp_path / "baepo.yaml").write_text(
        "app: shop\n"
        'run: {command: ["/usr/bin/python3", "app.py", "--port", "{port}"]}\n'
        "target: {kind: hosts, python: /usr/bin/python3, hosts: [{address: 10.0.0.11}]}\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "baepo", "hosts", "plan", "-f", str(tmp_path / "baepo.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    agent = [line for line in done.stdout.splitlines() if ".baepo/agent.py " in line]
    assert len(agent) == 2, done.stdout  # unpack, start
    assert all("  $ /usr/bin/python3 /srv/baepo/.baepo/agent.py " in line for line in agent)
    assert "python3 /srv" not in done.stdout.replace("/usr/bin/python3 /srv", "")

    (tmp_path / "baepo.yaml").write_text(
        "app: shop\n"
        'run: {command: ["python3", "app.py", "--port", "{port}"]}\n'
        "target: {kind: hosts, python: python3 -u, hosts: [{address: 10.0.0.11}]}\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "baepo", "hosts", "plan", "-f", str(tmp_path / "baepo.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "target.python" in done.stdout + done.stderr
