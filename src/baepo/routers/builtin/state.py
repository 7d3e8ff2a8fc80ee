"""The router's state file: the last routing table, so a restarted router serves it at once.

Written atomically (temporary file, fsync, rename) by ``admin`` after every accepted change;
read by ``server`` at start. A missing file is an empty table; an unreadable one is logged
and ignored rather than keeping the router from starting.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from baepo.routers.builtin.table import Route, TableError, parse_table, table_json

log = logging.getLogger("baepo.router")


def load_table(path: Path) -> list[Route]:
    """The table saved in ``path``; empty when there is none or it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except OSError as exc:
        log.error("cannot read the state file %s: %s; starting with an empty table", path, exc)
        return []
    try:
        return parse_table(json.loads(text))
    except (ValueError, TableError) as exc:
        log.error("ignoring the invalid state file %s: %s", path, exc)
        return []


def save_table(path: Path, routes: Sequence[Route]) -> None:
    """Replace ``path`` with the table, atomically. Raises OSError."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    data = json.dumps(table_json(routes), indent=1).encode()
    with tmp.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
