"""What ``adapter.BuiltinRouter`` sends to and reads from a router process: pure functions.

The router's command line (``router_argv``), the body of ``PUT /backends`` with its rules
(``backends_json``) and the parsing of ``GET /backends`` rules and ``GET /stats`` into the
port's dataclasses. No I/O, so tests compare them by equality. Caller: ``adapter``.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from baepo.core.ports import Backend, HeaderRoute, RevisionStats, RouterConfig, Sticky
from baepo.shell import process

MODULE = "baepo.routers.builtin"


SUN_PATH_MAX = 107  # bytes a unix socket path may have on Linux (108 with the final NUL)


def admin_socket(folder: Path) -> Path:
    """Where the router of ``folder`` listens for admin calls.

    In the folder itself when the path fits a unix socket address; otherwise (deep project
    folders) in a private per-user directory under the system's temporary folder, named by a
    hash of the folder, so adapter and router agree on it without storing it anywhere.
    """
    inside = folder / "admin.sock"
    if len(os.fsencode(inside)) <= SUN_PATH_MAX:
        return inside
    digest = hashlib.sha256(os.fsencode(folder.resolve())).hexdigest()[:20]
    private = Path(tempfile.gettempdir()) / f"baepo-{os.getuid()}"
    private.mkdir(mode=0o700, exist_ok=True)
    return private / f"{digest}.sock"


def router_argv(folder: Path, config: RouterConfig, connect_timeout: float) -> list[str]:
    """The command that runs the router process for ``config`` with its files in ``folder``.

    With ``config.metrics_listen`` the router also serves Prometheus metrics, labelled with the
    app, environment and listener.
    """
    metrics: list[str] = []
    if config.metrics_listen is not None:
        metrics = ["--metrics-listen", config.metrics_listen, "--app", config.app]
        metrics += ["--env", config.env, "--listener", config.listener]
    return process.python_module_argv(
        MODULE,
        "--listen",
        config.listen,
        "--admin",
        str(admin_socket(folder)),
        "--state",
        str(folder / "table.json"),
        "--upstream-timeout",
        f"{config.upstream_timeout:g}",
        "--idle-timeout",
        f"{config.idle_timeout:g}",
        "--connect-timeout",
        f"{connect_timeout:g}",
        *metrics,
    )


def backends_json(
    backends: Sequence[Backend],
    sticky: Sticky | None = None,
    header_routes: Sequence[HeaderRoute] = (),
) -> dict[str, Any]:
    """The body of ``PUT /backends``: the table, and its rules when there are any.

    Rules are left out rather than sent empty, so a router started by an earlier version (one
    that knows only ``backends``) keeps accepting plain tables after an upgrade.
    """
    body: dict[str, Any] = {
        "backends": [
            {"revision": b.revision, "weight": b.weight, "upstreams": list(b.upstreams)}
            for b in backends
        ],
    }
    if sticky is not None:
        rule: dict[str, str] = {}
        if sticky.cookie is not None:
            rule["cookie"] = sticky.cookie
        if sticky.header is not None:
            rule["header"] = sticky.header
        body["sticky"] = rule
    if header_routes:
        body["header_routes"] = [
            {"header": r.header, "value": r.value, "revision": r.revision} for r in header_routes
        ]
    return body


def parse_rules(data: dict[str, Any]) -> tuple[Sticky | None, tuple[HeaderRoute, ...]]:
    """The rules in a ``GET /backends`` answer."""
    rule = data.get("sticky")
    sticky = Sticky(rule.get("cookie"), rule.get("header")) if rule else None
    routes = tuple(
        HeaderRoute(str(r["header"]), str(r["value"]), int(r["revision"]))
        for r in data.get("header_routes", [])
    )
    return sticky, routes


def parse_stats(data: dict[str, Any]) -> list[RevisionStats]:
    """``GET /stats`` -> RevisionStats, one per revision routed to since the worker started."""
    started = float(data.get("started", 0.0))
    return [
        RevisionStats(
            revision=int(item["revision"]),
            requests=int(item["requests"]),
            status={str(k): int(v) for k, v in item["status"].items()},
            latency_buckets={str(k): int(v) for k, v in item["latency_buckets"].items()},
            latency_sum=float(item["latency_sum"]),
            in_flight=int(item["in_flight"]),
            started=started,
            retries=int(item.get("retries", 0)),
        )
        for item in data.get("revisions", [])
    ]
