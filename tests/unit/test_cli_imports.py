"""The CLI starts light: ``baepo --help`` loads none of the server's, the store's or a
platform's heavy libraries (each is imported where it is used)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("asyncssh", "fastapi", "sqlalchemy", "uvicorn", "httpx", "scipy", "apprise")


def test_help_imports_no_heavy_library() -> None:
    probe = (
        "import json, sys, contextlib, io\n"
        "from baepo.cli import main\n"
        "sys.argv = ['baepo', '--help']\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "    main.run()\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
