"""Where the server of a state directory listens, as its clients find it.

The server writes its record (pid, URL, version, database) to ``server.json`` and, with SQLite,
also into ``server.lock``, the file whose lock it holds for its whole life: a ``server.json``
deleted (or overwritten by a stale copy) while the server runs does not hide it, and a server
still starting is known by the pid it writes into the lock file before anything else. This
module is light on purpose: the CLI reads it on every command. Callers: ``api.server`` (writes
the records), ``cli.client`` and ``cli.server_commands`` (read them).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any

from baepo.errors import BaepoError
from baepo.shell.process import pid_alive

SERVER_FILE = "server.json"
LOCK_FILE = "server.lock"


def read_record(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None (missing, empty, half-written or not an object)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def live_server(state_dir: Path) -> dict[str, Any] | None:
    """The record of the live server process of ``state_dir``: ``server.json`` when its pid
    lives, else the lock file's copy when its pid lives, else None. A record without ``url``
    is a server still starting."""
    for name in (SERVER_FILE, LOCK_FILE):
        record = read_record(state_dir / name)
        if record and pid_alive(_pid(record)):
            return record
    return None


def write_lock_record(handle: IO[str], record: dict[str, Any]) -> None:
    """Replace the content of the held lock file with ``record`` (the lock is untouched).
    Unbuffered, so a full disk fails here (OSError), never later when the file is closed."""
    fd = handle.fileno()
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(record).encode(), 0)


def error_record(exc: BaepoError) -> dict[str, Any]:
    """What the lock file says when the server refused to start: the error, for the CLI that
    started it (``cli.client.start_server``) to raise again."""
    return {"exit_code": exc.exit_code, "message": str(exc), "hint": exc.hint}


def _pid(record: dict[str, Any]) -> int:
    try:
        return int(record.get("pid", 0))
    except (TypeError, ValueError):
        return 0
