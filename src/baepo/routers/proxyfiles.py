"""What the HAProxy and nginx routers share about running an outside proxy: finding its
executable, a unix socket path that fits, the per-listener folders and their JSON files.

Each listener of an app+environment has a folder
``<state dir>/routers/<kind>/<app>.<env>.<listener>`` holding the proxy's configuration, pid
file, sockets and ``settings.json`` (which names the app and environment, since both may
contain dots). Callers: ``routers.haproxy.adapter`` and
``routers.nginx.adapter``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from baepo.errors import ConfigError, ExternalError, Problem

MAIN = "main"
LISTENER_RE = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")


def find_binary(name: str, configured: str | None, hint: str) -> str:
    """The proxy's executable: ``router.binary``, else ``name`` on PATH, else /usr/sbin."""
    if configured:
        if not os.access(configured, os.X_OK):
            raise ConfigError(
                f"router.binary {configured!r} is not an executable",
                problems=[Problem("router.binary", f"{configured!r} is not an executable")],
            )
        return configured
    default = f"/usr/sbin/{name}"
    found = shutil.which(name) or (default if os.access(default, os.X_OK) else "")
    if not found:
        raise ExternalError(f"{name} is not installed (router.kind: {name})", hint=hint)
    return found


def socket_path(folder: Path, name: str, *, limit: int, prefix: str) -> Path:
    """A unix socket of the folder's proxy: in the folder when the path is at most ``limit``
    bytes, otherwise in a private per-user temporary directory named by a hash of the folder."""
    inside = folder / name
    if len(os.fsencode(inside)) <= limit:
        return inside
    digest = hashlib.sha256(os.fsencode(folder.resolve())).hexdigest()[:20]
    private = Path(tempfile.gettempdir()) / f"baepo-{os.getuid()}"
    private.mkdir(mode=0o700, exist_ok=True)
    return private / f"{prefix}-{digest}-{name}"


def folder(state_dir: Path, kind: str, app: str, env: str, listener: str) -> Path:
    if not LISTENER_RE.fullmatch(listener):
        raise ConfigError(
            f"listener: {listener!r} must be lower-case letters, digits and inner dashes"
        )
    return state_dir / "routers" / kind / f"{app}.{env}.{listener}"


def running_listeners(
    state_dir: Path, kind: str, app: str, env: str, running: Callable[[Path], bool]
) -> list[str]:
    """Listeners of app+env whose folder's proxy ``running`` says runs, ``"main"`` first."""
    prefix = f"{app}.{env}."
    try:
        folders = sorted((state_dir / "routers" / kind).iterdir())
    except OSError:
        return []
    found = []
    for path in folders:
        name = path.name[len(prefix) :]
        if not path.name.startswith(prefix) or not LISTENER_RE.fullmatch(name):
            continue
        record = read_json(path / "settings.json")
        if record.get("app") != app or record.get("env") != env:
            continue  # another environment whose name has a dot
        if running(path):
            found.append(name)
    return sorted(found, key=lambda name: (name != MAIN, name))


def read_json(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; empty when it is missing or unreadable."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Replace ``path`` atomically with ``data`` as JSON."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, path)
