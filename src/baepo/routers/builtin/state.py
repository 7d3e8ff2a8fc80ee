"""The router's state file: the last table and its rules, so a restarted router serves them.

Written atomically (temporary file, fsync, rename) by ``admin`` after every accepted change;
read by ``worker`` at start. A missing file is an empty table; an unreadable one is logged and
ignored rather than keeping the router from starting.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from baepo.routers.builtin.table import Table, TableError, parse_table, table_json

log = logging.getLogger("baepo.router")


def load_table(path: Path) -> Table:
    """The table (with its rules) saved in ``path``; empty when there is none or it cannot be
    read."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Table()
    except OSError as exc:
        log.error("cannot read the state file %s: %s; starting with an empty table", path, exc)
        return Table()
    try:
        return parse_table(json.loads(text))
    except (ValueError, TableError) as exc:
        log.error("ignoring the invalid state file %s: %s", path, exc)
        return Table()


def save_table(path: Path, table: Table) -> None:
    """Replace ``path`` with the table, atomically. Raises OSError."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    data = json.dumps(table_json(table), indent=1).encode()
    with tmp.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
