"""nginx.conf as a pure function of a routing table and the listener's settings.

Called by ``adapter.NginxRouter`` before every ``nginx -t`` and reload, and by the unit tests.
The configuration is built with plain string functions rather than a jinja2 template: what
needs care is nginx's own quoting (double-quoted strings, regular-expression map keys), not
HTML, and each quoting rule sits next to the one directive that uses it.

How a request is routed:

- each revision with ready upstreams gets ``upstream baepo_r<N>`` (its instances, equal
  weights, idle keep-alive connections kept for reuse);
- ``split_clients`` over ``$request_id`` (or the sticky key) picks a revision by weight;
  revisions are listed newest first, so a revision's hash range only grows as its weight rises
  and a sticky client already on a canary stays there;
- header routes are a chain of ``map $http_<header>`` (exact, case-sensitive value) whose
  default is the next map, ending with the weighted choice;
- ``$baepo_upstream`` is the chosen upstream's name, ``proxy_pass http://$baepo_upstream``
  sends the request there, and the access log records it (``accesslog`` reads it back).

That configuration (the "back") listens on a unix socket; ``render_front`` writes the "front"
on the app's address, which forwards to it and is not reloaded when the table changes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from baepo.core.ports import Backend, HeaderRoute, Sticky
from baepo.errors import ConfigError, Problem

UPSTREAM_PREFIX = "baepo_r"
ADDRESS_RE = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?):(\d{1,5})")
HEADER_RE = re.compile(r"[A-Za-z0-9]+(-[A-Za-z0-9]+)*")
COOKIE_RE = re.compile(r"[A-Za-z0-9_]+")
MAX_WEIGHT = 100
# Idle keep-alive connections each worker keeps per revision's upstream group.
UPSTREAM_KEEPALIVE = 32
# How long the front keeps an idle connection to the back (the back waits longer).
FRONT_IDLE = 60


@dataclass(frozen=True)
class Table:
    """A validated routing table with its rules, as served and as stored in table.json."""

    backends: tuple[Backend, ...] = ()
    sticky: Sticky | None = None
    header_routes: tuple[HeaderRoute, ...] = ()

    def to_json(self) -> dict[str, Any]:
        sticky = None
        if self.sticky is not None:
            sticky = {"cookie": self.sticky.cookie, "header": self.sticky.header}
        return {
            "backends": [
                {"revision": b.revision, "weight": b.weight, "upstreams": list(b.upstreams)}
                for b in self.backends
            ],
            "sticky": sticky,
            "header_routes": [
                {"header": r.header, "value": r.value, "revision": r.revision}
                for r in self.header_routes
            ],
        }

    def same_routing(self, other: Table) -> bool:
        """True when both route every request alike (backend and instance order aside)."""

        def key(table: Table) -> tuple[object, ...]:
            backends = sorted(
                (b.revision, b.weight, tuple(sorted(b.upstreams))) for b in table.backends
            )
            return (backends, table.sticky, table.header_routes)

        return key(self) == key(other)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Table:
        sticky = data.get("sticky")
        return cls(
            backends=tuple(
                Backend(int(b["revision"]), int(b["weight"]), tuple(b["upstreams"]))
                for b in data.get("backends", [])
            ),
            sticky=Sticky(sticky.get("cookie"), sticky.get("header")) if sticky else None,
            header_routes=tuple(
                HeaderRoute(str(r["header"]), str(r["value"]), int(r["revision"]))
                for r in data.get("header_routes", [])
            ),
        )


@dataclass(frozen=True)
class Settings:
    """Everything in nginx.conf that is not the table: paths, addresses, timeouts."""

    folder: Path  # nginx's prefix: pid, logs and temporary files live here
    listen: str
    status_socket: Path  # unix socket of the generation and stub_status server
    upstream_timeout: float
    idle_timeout: float
    drain_timeout: float
    connect_timeout: float = 5.0
    user: str | None = None  # worker user when the master runs as root
    workers: int = 1
    generation: int = 0
    name: str = ""  # "app.env listener", for the header comment
    # With a front (see ``render_front``): the unix socket this nginx serves the front on.
    back_socket: Path | None = None


def validate(
    backends: Sequence[Backend],
    sticky: Sticky | None = None,
    header_routes: Sequence[HeaderRoute] = (),
) -> Table:
    """The table as a ``Table``, or ConfigError naming every field nginx cannot express."""
    problems: list[Problem] = []
    seen: set[int] = set()
    for i, backend in enumerate(backends):
        where = f"backends[{i}]"
        if backend.revision in seen:
            problems.append(Problem(f"{where}.revision", f"revision {backend.revision} twice"))
        seen.add(backend.revision)
        if backend.revision < 0:
            problems.append(Problem(f"{where}.revision", "must be 0 or more"))
        if not 0 <= backend.weight <= MAX_WEIGHT:
            problems.append(Problem(f"{where}.weight", f"must be 0..{MAX_WEIGHT}"))
        for j, address in enumerate(backend.upstreams):
            match = ADDRESS_RE.fullmatch(address)
            if match is None or not 0 < int(match.group(3)) < 65536:
                problems.append(Problem(f"{where}.upstreams[{j}]", f"{address!r} is not host:port"))
    if sticky is not None:
        if (sticky.cookie is None) == (sticky.header is None):
            problems.append(Problem("sticky", "set exactly one of cookie and header"))
        elif sticky.cookie is not None and not COOKIE_RE.fullmatch(sticky.cookie):
            problems.append(
                Problem(
                    "sticky.cookie",
                    f"{sticky.cookie!r}: nginx reads only cookies named with letters, digits "
                    "and underscores ($cookie_NAME)",
                )
            )
        elif sticky.header is not None and not HEADER_RE.fullmatch(sticky.header):
            problems.append(
                Problem("sticky.header", f"{sticky.header!r}: use letters, digits and dashes")
            )
    for i, route in enumerate(header_routes):
        where = f"header_routes[{i}]"
        if not HEADER_RE.fullmatch(route.header):
            problems.append(
                Problem(f"{where}.header", f"{route.header!r}: use letters, digits and dashes")
            )
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in route.value):
            problems.append(Problem(f"{where}.value", "control characters cannot match"))
    if problems:
        raise ConfigError("nginx cannot serve this routing table", problems=problems)
    return Table(tuple(backends), sticky, tuple(header_routes))


def upstream_name(revision: int) -> str:
    return f"{UPSTREAM_PREFIX}{revision}"


def revision_of(upstream: str) -> int | None:
    """The revision whose upstream group is named ``upstream`` (as logged), else None."""
    if upstream.startswith(UPSTREAM_PREFIX) and upstream[len(UPSTREAM_PREFIX) :].isdigit():
        return int(upstream[len(UPSTREAM_PREFIX) :])
    return None


def quote(text: str) -> str:
    """``text`` as an nginx double-quoted string."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def exact_key(value: str) -> str:
    """A ``map`` key matching exactly ``value``, case-sensitively (a PCRE, quoted)."""
    return quote("~^" + re.escape(value) + "$")


def variable(prefix: str, name: str) -> str:
    """``$http_x_canary`` for header ``X-Canary``; ``$cookie_sid`` for cookie ``sid``."""
    return "$" + prefix + name.lower().replace("-", "_")


def seconds(value: float) -> str:
    """A duration in milliseconds, nginx's finest unit (at least 1 ms)."""
    return f"{max(1, round(value * 1000))}ms"


def split_entries(table: Table) -> list[tuple[str, str]]:
    """``split_clients`` lines: (share, upstream), newest revision first, ``*`` last.

    Shares are the revisions' weights over their sum in hundredths of a percent (nginx's
    resolution); the oldest revision takes the rounding remainder.
    """
    weighted = sorted(
        (b for b in table.backends if b.weight > 0 and b.upstreams),
        key=lambda b: b.revision,
        reverse=True,
    )
    total = sum(b.weight for b in weighted)
    entries: list[tuple[str, str]] = []
    for i, backend in enumerate(weighted):
        if i == len(weighted) - 1:
            entries.append(("*", upstream_name(backend.revision)))
            break
        basis = backend.weight * 10000 // total
        if basis:
            entries.append((f"{basis // 100}.{basis % 100:02d}%", upstream_name(backend.revision)))
    return entries


def render(settings: Settings, table: Table) -> str:
    """The complete nginx.conf for ``settings`` serving ``table``."""
    folder = settings.folder
    lines = [
        f"# nginx.conf of the baepo router {settings.name}, generation {settings.generation}.",
        "# Written by baepo on every change; edits here are overwritten.",
    ]
    if settings.user:
        lines.append(f"user {settings.user};")
    lines += [
        f"worker_processes {settings.workers};",
        f"pid {folder / 'nginx.pid'};",
        f"error_log {folder / 'error.log'} warn;",
        f"worker_shutdown_timeout {seconds(settings.drain_timeout)};",
        "events {",
        "    worker_connections 4096;",
        "}",
        "http {",
        "    default_type text/plain;",
        "    server_tokens off;",
        "    access_log off;",
        "    underscores_in_headers off;",
    ]
    for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        lines.append(f"    {kind}_temp_path {folder / 'temp' / kind};")
    lines += [
        "    log_format baepo escape=json",
        '        \'{"u":"$baepo_upstream","s":"$status","t":"$request_time",'
        '"a":"$upstream_addr","h":"$upstream_header_time"}\';',
        "    map $http_upgrade $baepo_connection {",
        "        default upgrade;",
        '        "" "";',
        "    }",
    ]
    routed = {b.revision: b for b in table.backends if b.upstreams}
    for revision in sorted(routed):
        lines.append(f"    upstream {upstream_name(revision)} {{")
        for address in routed[revision].upstreams:
            lines.append(f"        server {address} max_fails=0;")
        lines.append(f"        keepalive {UPSTREAM_KEEPALIVE};")
        lines.append("    }")
    lines += _sticky(table.sticky)
    entries = split_entries(table)
    if entries:
        key = "$baepo_sticky_key" if table.sticky is not None else "$request_id"
        lines.append(f'    split_clients "{key}" $baepo_weighted {{')
        lines += [f"        {share} {name};" for share, name in entries]
        lines.append("    }")
    else:
        lines += ["    map $request_id $baepo_weighted {", '        default "";', "    }"]
    routes = [r for r in table.header_routes if r.revision in routed]
    for i, route in enumerate(routes):
        target = f"$baepo_route{i + 1}" if i + 1 < len(routes) else "$baepo_weighted"
        name = "$baepo_upstream" if i == 0 else f"$baepo_route{i}"
        lines += [
            f"    map {variable('http_', route.header)} {name} {{",
            f"        {exact_key(route.value)} {upstream_name(route.revision)};",
            f"        default {target};",
            "    }",
        ]
    if not routes:
        lines += ["    map $baepo_weighted $baepo_upstream {", "        default $baepo_weighted;"]
        lines.append("    }")
    lines += _server(settings, table)
    lines += [
        "    server {",
        f"        listen unix:{settings.status_socket};",
        "        location = /generation {",
        f'            return 200 "{settings.generation}\\n";',
        "        }",
        "        location = /status {",
        "            stub_status;",
        "        }",
        "    }",
        "}",
    ]
    return "\n".join(lines) + "\n"


def render_front(settings: Settings) -> str:
    """front.conf: the nginx on the listen address that is never reloaded for a table change.

    It forwards every request over keep-alive unix-socket connections to the back (the nginx
    of ``render``, reloaded on every change). When a reload's old back workers close an idle
    connection just as the front sends a request on it, the front sends the request again on a
    new connection, which a new worker answers; clients never see the reload. The request was
    not read by the back, so the retry is safe for POST too (``non_idempotent``), and the front
    buffers request bodies so it can resend them.
    """
    folder = settings.folder
    lines = [
        f"# front.conf of the baepo router {settings.name}: the listen address, in front of",
        "# nginx.conf's server. Written by baepo; edits here are overwritten.",
    ]
    if settings.user:
        lines.append(f"user {settings.user};")
    lines += [
        f"worker_processes {settings.workers};",
        f"pid {folder / 'front.pid'};",
        f"error_log {folder / 'front-error.log'} warn;",
        f"worker_shutdown_timeout {seconds(settings.drain_timeout)};",
        "events {",
        "    worker_connections 4096;",
        "}",
        "http {",
        "    default_type text/plain;",
        "    server_tokens off;",
        "    access_log off;",
    ]
    for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        lines.append(f"    {kind}_temp_path {folder / 'temp' / ('front_' + kind)};")
    lines += [
        "    map $http_upgrade $baepo_connection {",
        "        default upgrade;",
        '        "" "";',
        "    }",
        "    upstream baepo_back {",
        f"        server unix:{settings.back_socket} max_fails=0;",
        "        keepalive 256;",
        f"        keepalive_timeout {FRONT_IDLE}s;",
        "        keepalive_requests 100000;",
        "    }",
        "    server {",
        f"        listen {settings.listen};",
        f"        keepalive_timeout {seconds(settings.idle_timeout)};",
        # Clients keep their connection as long as they like (nginx closes one after 1000
        # requests by default; HAProxy and the built-in router never do).
        "        keepalive_requests 100000;",
        "        location / {",
        "            proxy_pass http://baepo_back;",
        "            proxy_http_version 1.1;",
        "            proxy_set_header Host $http_host;",
        "            proxy_set_header Upgrade $http_upgrade;",
        "            proxy_set_header Connection $baepo_connection;",
        "            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "            proxy_set_header X-Forwarded-Proto $scheme;",
        "            proxy_connect_timeout 5s;",
        f"            proxy_read_timeout {seconds(settings.upstream_timeout + 5)};",
        f"            proxy_send_timeout {seconds(settings.upstream_timeout + 5)};",
        "            proxy_buffering off;",
        "            proxy_next_upstream error non_idempotent;",
        "            proxy_next_upstream_tries 4;",
        "        }",
        "    }",
        "}",
    ]
    return "\n".join(lines) + "\n"


def _sticky(sticky: Sticky | None) -> list[str]:
    if sticky is None:
        return []
    source = (
        variable("cookie_", sticky.cookie)
        if sticky.cookie
        else variable("http_", sticky.header or "")
    )
    lines = [
        f"    map {source} $baepo_sticky_key {{",
        '        "" $request_id;',
        f"        default {source};",
        "    }",
    ]
    if sticky.cookie:
        cookie = quote(f"{sticky.cookie}=$request_id; Path=/; HttpOnly; SameSite=Lax")
        lines += [
            f"    map {source} $baepo_set_cookie {{",
            f'        "" {cookie};',
            '        default "";',
            "    }",
        ]
    return lines


def _server(settings: Settings, table: Table) -> list[str]:
    folder = settings.folder
    listen, keepalive = settings.listen, settings.idle_timeout
    forwarded = ("$proxy_add_x_forwarded_for", "$scheme")
    if settings.back_socket is not None:
        # Behind the front: outlive the front's idle upstream connections, keep its headers.
        listen, keepalive = f"unix:{settings.back_socket}", FRONT_IDLE + 15
        forwarded = ("$http_x_forwarded_for", "$http_x_forwarded_proto")
    lines = [
        "    server {",
        f"        listen {listen};",
        f"        keepalive_timeout {seconds(keepalive)};",
        "        keepalive_requests 100000;",
        f"        access_log {folder / 'access.log'} baepo;",
        "        location / {",
        '            if ($baepo_upstream = "") {',
        '                return 503 "no ready instance\\n";',
        "            }",
        "            proxy_pass http://$baepo_upstream;",
        "            proxy_http_version 1.1;",
        "            proxy_set_header Host $http_host;",
        "            proxy_set_header Upgrade $http_upgrade;",
        "            proxy_set_header Connection $baepo_connection;",
        f"            proxy_set_header X-Forwarded-For {forwarded[0]};",
        f"            proxy_set_header X-Forwarded-Proto {forwarded[1]};",
        f"            proxy_connect_timeout {seconds(settings.connect_timeout)};",
        f"            proxy_read_timeout {seconds(settings.upstream_timeout)};",
        f"            proxy_send_timeout {seconds(settings.upstream_timeout)};",
        "            proxy_buffering off;",
        "            proxy_next_upstream error timeout http_502 http_503;",
        "            proxy_next_upstream_tries 3;",
    ]
    if table.sticky is not None and table.sticky.cookie:
        lines.append("            add_header Set-Cookie $baepo_set_cookie always;")
    lines += ["        }", "    }"]
    return lines
