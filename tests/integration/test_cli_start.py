"""``baepo status`` against a running server loads none of the heavy libraries (the unit test
``test_cli_imports`` checks the commands that need no server): the CLI answers at once."""

from __future__ import annotations

import json
import subprocess
import sys

from harness import SampleProject

HEAVY = ("asyncssh", "fastapi", "sqlalchemy", "uvicorn", "httpx", "scipy", "apprise")
# status reads the app's name from baepo.yaml (so YAML, not the spec's models)
AVOIDABLE = ("pydantic", "baepo.spec.models", "baepo.spec.loader", "pygments")


def test_status_imports_no_heavy_library(project: SampleProject) -> None:
    project.write("1.0.0", replicas=1)
    project.ok("deploy", "--wait")
    watched = (*HEAVY, *AVOIDABLE)
    probe = (
        "import json, sys, contextlib, io\n"
        "from baepo.cli import main\n"
        "sys.argv = ['baepo', 'status']\n"
        "shown = io.StringIO()\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(shown):\n"
        "    main.run()\n"
        "assert 'revision' in shown.getvalue(), shown.getvalue()\n"
        f"print(json.dumps([m for m in {watched!r} if m in sys.modules]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=project.root,
        env=project.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
