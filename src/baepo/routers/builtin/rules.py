"""Routing rules of the built-in router: header routes and sticky buckets, parsed and compiled.

A table (``table.Table``) may carry, besides its weighted routes, ``sticky`` and
``header_routes`` (validated by ``table.parse_table``). ``Matcher`` is their compiled form,
built by ``runtime.Runtime.apply`` and consulted by ``forwarding``/``client`` only when a
table has rules: a table without rules never reaches this module on the request path.

Sticky buckets follow kamal-proxy's rollout: a client's bucket is 0..99, read from the cookie
the router set on its first response or from ``crc32`` of a header's value; revisions own
contiguous ranges sized by their weights, newest (highest number) first, so raising a
canary's weight only adds buckets to it. No I/O; stdlib only (the router process imports it).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, Generic, Protocol, TypeVar
from zlib import crc32

from baepo.routers.builtin.table import HeaderRule, StickyRule

BUCKETS = 100
# Counters of rule decisions, served in ``GET /stats`` as ``rules``.
HEADER_ROUTED, STICKY_ROUTED, WEIGHTED, COOKIES_SET = range(4)
COUNT_NAMES = ("header_routed", "sticky_routed", "weighted", "cookies_set")


def bucket_ranges(weights: Sequence[tuple[int, int]]) -> dict[int, tuple[int, int]]:
    """``{revision: (first, end)}``: the buckets each revision owns, newest revision first.

    ``weights`` are ``(revision, weight)`` pairs; range sizes are proportional to the weights
    (boundaries rounded down, the last one is 100), so with weights 25 (revision 2) and 75
    (revision 1), revision 2 owns 0..24 and revision 1 25..99. Weight 0 owns nothing.
    """
    total = sum(w for _, w in weights if w > 0)
    out: dict[int, tuple[int, int]] = {}
    if not total:
        return out
    cumulative = 0
    first = 0
    for revision, weight in sorted(weights, key=lambda item: -item[0]):
        if weight <= 0:
            continue
        cumulative += weight
        end = cumulative * BUCKETS // total
        out[revision] = (first, end)
        first = end
    return out


def header_bucket(value: bytes) -> int:
    """A stable bucket 0..99 for a header value (CRC-32, the same in every process)."""
    return crc32(value) % BUCKETS


def set_cookie_line(name: str, bucket: int) -> bytes:
    """The response header line that gives a client its bucket."""
    return f"Set-Cookie: {name}={bucket}; Path=/; HttpOnly; SameSite=Lax\r\n".encode()


def _header_pattern(name: str, value: bytes) -> Callable[[bytes], re.Match[bytes] | None]:
    """Finds ``name: value`` (``value`` may be a pattern) in a request head."""
    return re.compile(
        rb"\r\n(?i:" + re.escape(name.encode()) + rb"):[ \t]*" + value + rb"[ \t]*\r\n"
    ).search


class Revisioned(Protocol):
    """A compiled route: its revision number and whether it has upstreams."""

    revision: int
    upstreams: Any


T = TypeVar("T", bound=Revisioned)


class Matcher(Generic[T]):
    """Chooses the route of one request from its head: header routes, sticky bucket, weights.

    ``targets`` are the compiled routes (with upstreams or not), ``weights`` their
    effective weights (0 when a route has no upstreams); ``counts`` is a list of four ints
    kept across table changes (indices ``HEADER_ROUTED`` .. ``COOKIES_SET``).
    """

    __slots__ = ("cookie", "counts", "find_bucket", "owners", "ranges", "routes", "turns")

    def __init__(
        self,
        sticky: StickyRule | None,
        header_routes: Sequence[HeaderRule],
        targets: Sequence[T],
        weights: Sequence[int],
        counts: list[int],
    ) -> None:
        by_revision = {t.revision: t for t in targets}
        self.counts = counts
        self.routes: list[tuple[Callable[[bytes], re.Match[bytes] | None], T]] = []
        for rule in header_routes:
            target = by_revision.get(rule.revision)
            if target is not None and target.upstreams:
                pattern = _header_pattern(rule.header, re.escape(rule.value.encode()))
                self.routes.append((pattern, target))
        ranges = bucket_ranges([(t.revision, w) for t, w in zip(targets, weights, strict=True)])
        self.ranges: dict[int, tuple[int, int]] = ranges
        self.owners: list[T | None] = [None] * BUCKETS
        for revision, (first, end) in ranges.items():
            for bucket in range(first, end):
                self.owners[bucket] = by_revision[revision]
        self.cookie: str | None = None
        self.find_bucket: Callable[[bytes], re.Match[bytes] | None] | None = None
        if sticky is not None and sticky.cookie is not None:
            self.cookie = sticky.cookie
            # The cookie is the first pair or follows ";" or white space, value 0..99.
            self.find_bucket = re.compile(
                rb"\r\n(?i:cookie):(?:[^\r\n]*?[; \t])?"
                + re.escape(sticky.cookie.encode())
                + rb"=([0-9]{1,2})[ \t]*(?=;|\r\n)"
            ).search
        elif sticky is not None and sticky.header is not None:
            self.find_bucket = _header_pattern(sticky.header, rb"([^\r\n]*?)")
        self.turns: dict[int, int] = {}

    def choose(self, head: bytes, pick: Callable[[], T | None]) -> tuple[T | None, bytes | None]:
        """The route for a request with ``head`` (``None``: nothing can serve it) and the
        ``Set-Cookie`` line to add to its response, if any. ``pick`` is the weighted pick."""
        counts = self.counts
        for pattern, target in self.routes:
            if pattern(head) is not None:
                counts[HEADER_ROUTED] += 1
                return target, None
        find = self.find_bucket
        if find is not None:
            found = find(head)
            if found is not None:
                raw = found[1]
                bucket = int(raw) if self.cookie is not None else header_bucket(raw)
                owner = self.owners[bucket]
                if owner is not None:
                    counts[STICKY_ROUTED] += 1
                    return owner, None
        counts[WEIGHTED] += 1
        picked = pick()
        if self.cookie is None or picked is None:
            return picked, None
        span = self.ranges.get(picked.revision)
        if span is None or span[0] == span[1]:
            return picked, None  # a share too small to own a bucket: no promise to keep
        first, end = span
        turn = self.turns.get(picked.revision, 0)
        self.turns[picked.revision] = turn + 1
        bucket = first + turn % (end - first)  # each revision's buckets in turn: evenly spread
        counts[COOKIES_SET] += 1
        return picked, set_cookie_line(self.cookie, bucket)
