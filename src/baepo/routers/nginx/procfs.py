"""What /proc says about a running nginx: its workers and their upstream connections.

Callers: ``adapter.NginxRouter`` (waiting for a reload's new workers, ``in_flight``). Linux
only; every function returns empty results rather than failing when /proc cannot be read.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
from pathlib import Path

PROC = Path("/proc")
WORKER_TITLE = "nginx: worker process"
ESTABLISHED = "01"


def title(pid: int) -> str:
    """The process title (nginx rewrites its argv), '' when the process is gone."""
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def children(pid: int) -> list[int]:
    """Pids whose parent is ``pid``."""
    found = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = (entry / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def group(pgid: int) -> list[int]:
    """Pids whose process group is ``pgid``."""
    found = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = (entry / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[2]) == pgid:
                found.append(int(entry.name))
    return found


def serving_workers(master: int) -> set[int]:
    """The master's workers that accept new connections (not those shutting down)."""
    return {pid for pid in children(master) if title(pid) == WORKER_TITLE}


def _socket_inodes(pids: list[int]) -> set[str]:
    inodes: set[str] = set()
    for pid in pids:
        fds = PROC / str(pid) / "fd"
        with contextlib.suppress(OSError):
            for fd in os.listdir(fds):
                with contextlib.suppress(OSError):
                    target = os.readlink(fds / fd)
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
    return inodes


def _address(hex_address: str, v6: bool) -> str:
    host, port = hex_address.split(":")
    raw = bytes.fromhex(host)
    if v6:
        # Four little-endian 32-bit words.
        packed = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
        ip6 = ipaddress.IPv6Address(packed)
        mapped = ip6.ipv4_mapped
        return f"{mapped}:{int(port, 16)}" if mapped else f"[{ip6}]:{int(port, 16)}"
    return f"{ipaddress.IPv4Address(raw[::-1])}:{int(port, 16)}"


def connections(master: int, listen_port: int) -> dict[str, int]:
    """Established connections of the master's workers per remote ``host:port``, leaving out
    clients' connections (those whose local port is ``listen_port``)."""
    inodes = _socket_inodes(children(master))
    counts: dict[str, int] = {}
    if not inodes:
        return counts
    for name, v6 in (("tcp", False), ("tcp6", True)):
        with contextlib.suppress(OSError):
            for line in (PROC / "net" / name).read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) < 10 or fields[3] != ESTABLISHED or fields[9] not in inodes:
                    continue
                if int(fields[1].rsplit(":", 1)[1], 16) == listen_port:
                    continue
                with contextlib.suppress(ValueError):
                    remote = _address(fields[2], v6)
                    counts[remote] = counts.get(remote, 0) + 1
    return counts
