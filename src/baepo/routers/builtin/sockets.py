"""The router's listening sockets, opened once by the master and inherited by every worker.

``open_listeners`` binds the client address (``--listen``), the metrics address
(``--metrics-listen``, when given) and the admin unix socket (``--admin``, owner-only). The
master keeps them open for its whole life, so the kernel's accept queues outlive a worker: a
connection that arrives while a worker restarts waits in the queue and is served by the next
worker. ``close`` shuts the master's copies; ``remove_admin`` deletes the admin socket file
only when it is still ours (a successor may already listen on the same path). Callers:
``server`` (open, close) and ``worker`` (serves on them).
"""

from __future__ import annotations

import contextlib
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from baepo.routers.builtin.table import split_address

BACKLOG = 2048
ADMIN_BACKLOG = 128


@dataclass
class Listeners:
    """Listening sockets: clients (one per address of the host), metrics, admin."""

    client: list[socket.socket]
    metrics: list[socket.socket] = field(default_factory=list)
    admin: socket.socket | None = None
    admin_path: Path | None = None
    admin_inode: int = 0

    def all(self) -> list[socket.socket]:
        return [*self.client, *self.metrics, *([self.admin] if self.admin else [])]

    def close(self) -> None:
        for sock in self.all():
            sock.close()

    def remove_admin(self) -> None:
        """Delete the admin socket file if it is the one this process created."""
        if self.admin_path is None:
            return
        with contextlib.suppress(OSError):
            if self.admin_path.stat().st_ino == self.admin_inode:
                self.admin_path.unlink()


class ListenError(OSError):
    """A listener could not be opened; ``option`` names the command-line option."""

    def __init__(self, option: str, address: str, cause: OSError) -> None:
        super().__init__(cause.errno, cause.strerror)
        self.option = option
        self.address = address
        self.cause = cause


def bind_tcp(address: str) -> list[socket.socket]:
    """Listening TCP sockets for ``host:port``, one per address the host resolves to (as
    ``asyncio``'s ``create_server`` does), with ``SO_REUSEADDR``. Raises OSError."""
    host, port = split_address(address)
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    opened: list[socket.socket] = []
    try:
        for family, kind, proto, _, sockaddr in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            opened.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(sockaddr)
            sock.listen(BACKLOG)
    except OSError:
        for sock in opened:
            sock.close()
        raise
    return opened


def bind_unix(path: Path) -> tuple[socket.socket, int]:
    """A listening unix socket at ``path`` (a stale file there is replaced), mode 0600; the
    socket and its inode. Raises OSError."""
    if path.exists() or path.is_symlink():
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        # Owner-only from the moment it exists: no window in which others may connect.
        old = os.umask(0o177)
        try:
            sock.bind(str(path))
        finally:
            os.umask(old)
        os.chmod(path, 0o600)
        sock.listen(ADMIN_BACKLOG)
        return sock, path.stat().st_ino
    except OSError:
        sock.close()
        raise


def open_listeners(listen: str, metrics_listen: str | None, admin: Path) -> Listeners:
    """Bind every listener; raises ListenError naming the option that failed."""
    try:
        found = Listeners(bind_tcp(listen))
    except OSError as exc:
        raise ListenError("listen", listen, exc) from exc
    if metrics_listen is not None:
        try:
            found.metrics = bind_tcp(metrics_listen)
        except OSError as exc:
            found.close()
            raise ListenError("metrics_listen", metrics_listen, exc) from exc
    try:
        found.admin, found.admin_inode = bind_unix(admin)
    except OSError as exc:
        found.close()
        raise ListenError("admin", str(admin), exc) from exc
    found.admin_path = admin
    return found
