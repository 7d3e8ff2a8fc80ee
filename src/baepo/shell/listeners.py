"""Who listens on a TCP port of this machine, read from /proc: "pid 4121 (python3)".

When a port baepo needs (the router's, an instance's) is taken, the failure names what holds
it: ``/proc/net/tcp`` and ``tcp6`` give the listening socket's inode, the ``/proc/<pid>/fd``
links give the process that has it open, and ``/proc/<pid>/comm`` its program name (never its
arguments, which may hold secrets). Linux only; anything unreadable (another user's process
without root, no /proc) gives None, never an error. Stdlib only. Callers: the local instance
supervisor, the controller (a router that cannot listen).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

PROC = Path("/proc")
LISTEN = "0A"


def listening_inodes(port: int, proc: Path = PROC) -> set[str]:
    """Inodes of the sockets listening on ``port`` (any address, IPv4 or IPv6)."""
    inodes: set[str] = set()
    for table in ("tcp", "tcp6"):
        try:
            rows = (proc / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) < 10 or fields[3] != LISTEN:
                continue
            with contextlib.suppress(ValueError, IndexError):
                if int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(fields[9])
    return inodes


def holder(port: int, proc: Path = PROC) -> str | None:
    """``pid 4121 (python3)`` for the process listening on ``port``; ``a process`` when the
    socket is there but its owner cannot be seen; None when nothing listens on it."""
    inodes = listening_inodes(port, proc)
    if not inodes:
        return None
    links = {f"socket:[{inode}]" for inode in inodes}
    with contextlib.suppress(OSError):
        for entry in sorted(proc.iterdir(), key=lambda p: p.name):
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                for fd in os.listdir(entry / "fd"):
                    with contextlib.suppress(OSError):
                        if os.readlink(entry / "fd" / fd) in links:
                            return f"pid {entry.name} ({_comm(entry)})"
    return "a process"


def describe(port: int, proc: Path = PROC) -> str:
    """``port 8080 is taken by pid 4121 (python3)``, or ``port 8080 is taken (address
    already in use)`` when the holder cannot be found."""
    found = holder(port, proc)
    if found is None or found == "a process":
        return f"port {port} is taken (address already in use)"
    return f"port {port} is taken by {found}"


def _comm(entry: Path) -> str:
    try:
        name = (entry / "comm").read_text().strip()
    except OSError:
        return "?"
    return "".join(c for c in name if c.isprintable()) or "?"
