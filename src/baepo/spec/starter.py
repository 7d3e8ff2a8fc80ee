"""The commented starter ``baepo.yaml`` that ``baepo init`` writes.

Each section is explained in a comment or two and holds a value that works as it is: the default
command serves the current folder with Python's own web server, so ``baepo deploy`` succeeds
before the user has edited anything. A test proves the starter parses.

Callers: the CLI (``baepo init``), ``spec.reference`` (the full example in docs/spec.md), tests.
"""

from __future__ import annotations

import json
import re

from baepo.errors import ConfigError
from baepo.spec.files import APP_NAME_RE

DEFAULT_COMMAND = ["python3", "-m", "http.server", "{port}", "--bind", "127.0.0.1"]

_TEMPLATE = """\
# baepo.yaml: how baepo runs, checks and releases this app.
# Reference: docs/spec.md. Durations are written 500ms, 30s, 2m or 1h.

# The app's name: lower-case letters, digits and dashes.
app: {app}

# The version to release; `baepo deploy --version X` overrides it. Quote it: "1.10" is not 1.1.
version: "0.1.0"

# How to start one instance. {{port}} is replaced by the port baepo picks (also in $PORT).
run:
  command: {command}
  env:
    LOG_LEVEL: info
  # Time between SIGTERM and SIGKILL when an instance is stopped.
  stop_grace_period: 10s

# How many instances serve traffic at once.
replicas: 2

# Readiness gates traffic: an instance gets requests only while GET path answers 2xx or 3xx.
# Liveness restarts an instance that stops answering.
health:
  readiness:
    path: /
    interval: 1s
    timeout: 1s
    failure_threshold: 3
  liveness:
    path: /
    interval: 5s
    failure_threshold: 3

# The built-in router users connect to; it moves traffic between instances without dropping
# requests.
router:
  listen: "127.0.0.1:8080"
  drain_timeout: 30s

# How a new version replaces the old one. rolling: a few instances at a time, no downtime.
# recreate (`strategy: recreate`): stop all, then start all; has downtime.
strategy:
  rolling:
    max_surge: 25%          # extra instances allowed during the update (rounded up)
    max_unavailable: 0      # instances allowed to be not ready (rounded down)

# A rollout that makes no progress for this long fails and rolls back.
progress_deadline: 10m
"""


def starter_spec(app: str, command: list[str] | None = None) -> str:
    """A commented ``baepo.yaml`` for ``app``, running ``command`` (default: a static server)."""
    if not re.match(APP_NAME_RE, app):
        raise ConfigError(
            f"{app!r} is not a valid app name",
            hint=f"use lower-case letters, digits and dashes, e.g. {app_name_from(app)!r}",
        )
    argv = command if command else DEFAULT_COMMAND
    if not argv[0].strip():
        raise ConfigError("the command's first item must name a program")
    rendered = "[" + ", ".join(json.dumps(arg, ensure_ascii=False) for arg in argv) + "]"
    return _TEMPLATE.format(app=app, command=rendered)


def app_name_from(text: str) -> str:
    """A valid app name made from ``text`` (a folder name): ``My_Shop API`` → ``my-shop-api``."""
    name = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:63].strip("-")
    return name or "app"


STARTER_SPEC: str = starter_spec("my-app")
