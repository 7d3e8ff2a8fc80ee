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
