"""One request's journey through the built-in router (``Exchange``).

Made by ``client`` when a request head is parsed and driven by ``forwarding`` until its answer
ends, it holds what a retry needs: the bytes kept for resending, the upstreams already tried
and the chosen route.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from baepo.routers.builtin.runtime import RouteState
    from baepo.routers.builtin.upstream import Upstream, UpstreamConnection


class Reject(Exception):
    """Raised from a parser callback: answer ``status`` with ``message`` and close."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Exchange:
    """One request from parse to answer. ``pieces`` holds bytes to (re)send, None once gone."""

    __slots__ = (
        "answered",
        "chunked",
        "complete",
        "conn",
        "cookie",
        "idempotent",
        "is_head",
        "keep_alive",
        "kept",
        "pieces",
        "resent",
        "route",
        "started",
        "tried",
        "upgrade",
        "upstream",
    )

    def __init__(self, head: bytes, started: float) -> None:
        self.pieces: list[bytes] | None = [head]
        self.kept = len(head)
        self.started = started
        self.complete = False
        self.answered = False
        self.conn: UpstreamConnection | None = None
        self.upstream: Upstream | None = None
        self.route: RouteState | None = None
        self.tried: set[Upstream] | None = None
        self.resent = False  # the one retry after a failure is used (see ``retry.decide``)
        self.chunked = False
        self.is_head = False
        self.idempotent = True
        self.keep_alive = True
        self.upgrade = False
        self.cookie: bytes | None = None  # a Set-Cookie line for the response (sticky rules)
