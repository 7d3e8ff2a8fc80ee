"""HAProxy's configuration and per-server weights, as pure functions of the routing table.

One backend ``app`` holds one server per ready upstream, named ``baepo_r<revision>-<address>``
so every server (and every log line, through ``srv_name``) names its revision. A revision's
weight (0..100) is split over its upstreams and scaled into HAProxy's 0..256 so that each
revision keeps its share. Each finished request is logged to stdout as one JSON line in the
nginx router's format (``u`` the revision's group, ``s`` status, ``t`` total time, ``h`` the
server's response time, -1 when no server answered), which ``stats`` counts. With sticky
sessions or header routes (``rules.Rules``), each revision also has a backend of its own whose
servers carry the same names at weight 1, and the frontend picks among them (see ``rules``).
Callers: ``adapter.HAProxyRouter``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from baepo.core.ports import Backend
from baepo.routers.haproxy import rules as routing

PREFIX = "baepo_r"
BACKEND = "app"
MAX_WEIGHT = 256
LOG_FORMAT = '{"u":"%[srv_name,field(1,-)]","s":"%ST","t":"%Ta","h":"%Tr"}'
_UNSAFE = re.compile(r"[^A-Za-z0-9_.]")


@dataclass(frozen=True)
class Server:
    """One upstream of the backend: its name, address and HAProxy weight."""

    name: str
    address: str
    revision: int
    weight: int


@dataclass(frozen=True)
class Settings:
    """Everything but the table: where HAProxy listens, its files and its timeouts."""

    listen: str
    admin_socket: Path
    upstream_timeout: float
    idle_timeout: float
    threads: int = 1
    connect_timeout: float = 5.0
    # A reload's old worker closes an idle keep-alive connection only after answering one
    # more request on it, so no client meets a connection closed under its request (2.6+).
    idle_close_on_response: bool = True


def server_name(revision: int, address: str) -> str:
    """``baepo_r3-127.0.0.1_8001``: the revision first, then the address made name-safe."""
    return f"{PREFIX}{revision}-{_UNSAFE.sub('_', address)}"


def revision_of(name: str) -> int | None:
    """The revision in a server's name (or its first ``-`` field, as logged), else None."""
    head = name.split("-", 1)[0]
    if head.startswith(PREFIX) and head[len(PREFIX) :].isdigit():
        return int(head[len(PREFIX) :])
    return None


def servers(backends: Sequence[Backend]) -> list[Server]:
    """Per-server weights that keep each revision's share of the traffic.

    Exact when the revisions' weights, over the least common multiple of their upstream
    counts, fit in 0..256; otherwise scaled down and rounded (a revision with weight > 0
    keeps at least weight 1 per server).
    """
    live = [b for b in backends if b.upstreams]
    if not live:
        return []
    common = math.lcm(*(len(b.upstreams) for b in live))
    raw = {b.revision: b.weight * common // len(b.upstreams) for b in live}
    top = max(raw.values())
    scale = min(1.0, MAX_WEIGHT / top) if top else 1.0
    out = []
    for backend in live:
        weight = round(raw[backend.revision] * scale)
        if backend.weight > 0:
            weight = max(1, weight)
        for address in backend.upstreams:
            out.append(Server(server_name(backend.revision, address), address, backend.revision,
                              weight))  # fmt: skip
    return out


def revision_servers(backends: Sequence[Backend]) -> dict[int, list[Server]]:
    """Each revision's servers in its own backend (``rules.backend_name``), at weight 1: a
    header route reaches a revision whatever its weight, and a bucket is owned by a revision,
    not a server."""
    return {
        b.revision: [Server(server_name(b.revision, a), a, b.revision, 1) for a in b.upstreams]
        for b in backends
    }


def _seconds(value: float) -> str:
    return f"{max(1, math.ceil(value * 1000))}ms"


def _bind(listen: str) -> str:
    """HAProxy's bind address: IPv6 literals lose their brackets (``[::1]:80`` -> ``::1:80``)."""
    host, _, port = listen.rpartition(":")
    return f"{host.strip('[]')}:{port}"


def render(
    settings: Settings,
    table: Sequence[Server],
    rules: routing.Rules | None = None,
    backends: Sequence[Backend] = (),
) -> str:
    """The whole configuration: a master-worker HAProxy with an admin socket, one frontend on
    ``listen`` and the backend with ``table``'s servers; with ``rules``, the frontend's rules
    and one backend per revision of ``rules.revisions`` (servers from ``backends``)."""
    lines = [
        "global",
        f"    stats socket {settings.admin_socket} mode 600 level admin expose-fd listeners",
        "    log stdout format raw local0 info",
        f"    nbthread {settings.threads}",
        "    maxconn 4096",
        "",
        "defaults",
        "    mode http",
        "    log global",
        "    option dontlognull",
        "    option http-keep-alive",
        f"    timeout connect {_seconds(settings.connect_timeout)}",
        f"    timeout client {_seconds(max(settings.idle_timeout, settings.upstream_timeout))}",
        f"    timeout server {_seconds(settings.upstream_timeout)}",
        f"    timeout http-keep-alive {_seconds(settings.idle_timeout)}",
        *(["    option idle-close-on-response"] if settings.idle_close_on_response else []),
        "    timeout queue 5s",
        "    retries 3",
        "    option redispatch 1",
        "    retry-on conn-failure empty-response",
        f"    log-format '{LOG_FORMAT}'",
        "",
        "frontend main",
        f"    bind {_bind(settings.listen)}",
    ]
    if rules is not None:
        lines += routing.frontend(rules)
    lines += [
        f"    default_backend {BACKEND}",
        "",
        f"backend {BACKEND}",
        "    balance roundrobin",
    ]
    for server in table:
        lines.append(f"    server {server.name} {server.address} weight {server.weight}")
    if rules is not None:
        by_revision = revision_servers(backends)
        for revision in rules.revisions:
            lines += ["", f"backend {routing.backend_name(revision)}", "    balance roundrobin"]
            for server in by_revision.get(revision, []):
                lines.append(f"    server {server.name} {server.address} weight 1")
    return "\n".join(lines) + "\n"
