"""Read-only looks at the process table (``/proc``): is a process group still there?

Signalling and starting processes stay in ``baepo.shell.process``; this only observes, so the
platform can tell when an instance has really gone. Callers: ``platform``, tests.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def group_members(pgid: int) -> list[int]:
    """Pids of live (not zombie) processes in process group ``pgid``."""
    if pgid <= 0:
        return []
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return []
    except PermissionError:
        pass
    members: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
                members.append(int(entry.name))
    return members


def group_alive(pgid: int | None) -> bool:
    """True while any live process remains in the group."""
    return pgid is not None and bool(group_members(pgid))
