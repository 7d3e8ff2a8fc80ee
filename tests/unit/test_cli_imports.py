"""The CLI starts light: a plain command (``--version``, ``--help``, a command's help) loads
none of the server's, the store's or a platform's heavy libraries, nor the spec's Pydantic
models (each is imported where it is used). ``baepo status`` against a running server is
checked the same way in ``tests/integration/test_cli_start.py``."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("asyncssh", "fastapi", "sqlalchemy", "uvicorn", "httpx", "scipy", "apprise")
# Not heavy by themselves, but nothing a plain command needs: the spec's models (Pydantic),
# YAML, and syntax highlighting (pygments; Rich's Markdown help needs it, so not for help).
AVOIDABLE = ("pydantic", "baepo.spec.models", "baepo.spec.loader", "yaml")
# What only a command that talks to a server needs: the client's HTTP and the process helpers.
SERVER_ONLY = ("http.client", "asyncio")


def imported_by(*argv: str) -> list[str]:
    """The modules of HEAVY, AVOIDABLE, SERVER_ONLY and pygments that ``baepo ARGV``
    imports."""
    watched = (*HEAVY, *AVOIDABLE, *SERVER_ONLY, "pygments")
    probe = (
        "import json, sys, contextlib, io\n"
        "from baepo.cli import main\n"
        f"sys.argv = ['baepo', *{list(argv)!r}]\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "    main.run()\n"
        f"print(json.dumps([m for m in {watched!r} if m in sys.modules]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    found: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["deploy", "--help"], ["hosts", "--help"], ["status", "--help"]],
    ids=" ".join,
)
def test_help_imports_no_heavy_library(argv: list[str]) -> None:
    assert [m for m in imported_by(*argv) if m != "pygments"] == []


def test_version_imports_no_heavy_library() -> None:
    assert imported_by("--version") == []
