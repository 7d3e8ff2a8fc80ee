"""The state directory's permissions: the directory and everything in it are its owner's alone.

The state directory holds the database, ``secret.key`` (which decrypts every environment's
secrets), ``server.json``, logs, router state and instance folders. It is created 0700, the
server runs with umask 077 so every file it (and the supervisors and routers it starts) writes
there is 0600 and every folder 0700, and at start the server takes the group and other bits
off whatever an older version or another tool left readable. Commands of a spec run with
umask 022 in their own folders (``CHILD_UMASK``). Stdlib only. Callers: the server at start,
the CLI when it creates a state directory.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE_UMASK = 0o077
CHILD_UMASK = 0o022  # what spec commands run with, as under systemd
_OPEN_BITS = stat.S_IRWXG | stat.S_IRWXO


def create(state_dir: Path) -> None:
    """Create ``state_dir`` (and missing parents, with the usual modes) as a 0700 folder."""
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)


def secure(state_dir: Path) -> list[Path]:
    """Make ``state_dir`` 0700 and take group and other permissions off everything in it
    (symlinks are not followed). Returns what was changed, ``state_dir`` first if it was."""
    changed: list[Path] = []
    create(state_dir)
    if _restrict(state_dir):
        changed.append(state_dir)
    for root, dirs, files in os.walk(state_dir):
        for name in (*dirs, *files):
            path = Path(root, name)
            if _restrict(path):
                changed.append(path)
    return changed


def _restrict(path: Path) -> bool:
    try:
        mode = path.lstat().st_mode
    except OSError:
        return False  # gone meanwhile
    if stat.S_ISLNK(mode) or not mode & _OPEN_BITS:
        return False
    try:
        os.chmod(path, stat.S_IMODE(mode) & ~_OPEN_BITS)
    except OSError:
        return False
    return True
