"""The server answers only requests addressed to one of its own names (``Host``), so a web page
cannot reach it through a DNS name that an attacker points at 127.0.0.1 (DNS rebinding).

Starlette's ``TrustedHostMiddleware`` compares host names without the port and cuts ``[::1]``
at its first colon; this one compares ``host:port`` as the browser sends it. Names are:
``localhost``, ``127.0.0.1`` and ``[::1]`` with the server's port when it listens on loopback;
the listen address with the port; the machine's host name with the port when it listens on
every address; and each ``--public-name`` (``HOST`` for any port, as behind a proxy, or
``HOST:PORT``; ``*`` for any name). Anything else gets 421 (problem+json). Callers:
``api.server`` builds the names, ``api.app`` installs the middleware.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from baepo.api import problems

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
WILDCARDS = frozenset({"0.0.0.0", "::", ""})


@dataclass(frozen=True)
class HostNames:
    """The ``Host`` values a server answers: exact ``host:port`` ones, and bare host names
    that match with any port (or none)."""

    exact: frozenset[str]
    any_port: frozenset[str] = frozenset()
    anything: bool = False

    def allows(self, host: str) -> bool:
        host = host.strip().lower()
        if self.anything or host in self.exact:
            return True
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        return host in self.any_port or name in self.any_port


def names_of(listen_host: str, port: int, public_names: Sequence[str] = ()) -> HostNames:
    """The names of a server listening on ``listen_host``:``port``."""
    hosts: set[str] = set()
    if listen_host in WILDCARDS:
        hosts |= {*LOOPBACK_NAMES, socket.gethostname().lower(), socket.getfqdn().lower()}
    elif _loopback(listen_host):
        hosts |= set(LOOPBACK_NAMES)
    hosts.add(_bracketed(listen_host.lower()))
    exact = {f"{h}:{port}" for h in hosts} | ({*hosts} if port == 80 else set())
    bare: set[str] = set()
    for name in (n.strip().lower() for n in public_names):
        if name == "*":
            return HostNames(frozenset(exact), anything=True)
        if _has_port(name):
            exact.add(name)
        elif name:
            bare.add(_bracketed(name))
    return HostNames(frozenset(exact), frozenset(bare))


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _has_port(name: str) -> bool:
    if name.startswith("["):
        return "]:" in name
    return name.count(":") == 1


class TrustedHosts:
    """ASGI middleware: 421 for a request whose ``Host`` is not one of ``names``."""

    def __init__(self, app: ASGIApp, names: HostNames) -> None:
        self.app = app
        self.names = names

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), "")
        if self.names.allows(host):
            await self.app(scope, receive, send)
            return
        response = problems.problem(
            421,
            "misdirected request",
            f"this server does not answer to the Host {host[:100]!r}",
            hint="use the address baepo server status prints; a server for a team names "
            "its other names with --public-name",
        )
        await response(scope, receive, send)
