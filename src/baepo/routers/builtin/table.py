"""The routing table and the pure selection logic of the built-in router.

A table is a list of routes, one per revision: ``{revision, weight, upstreams}``. The proxy
(``runtime``) compiles a table into a ``WeightedCycle`` of revisions and picks an upstream of the
chosen revision with ``pick_least_loaded``. Validation (``parse_table``) is used by the admin
server and the state file loader and names the offending field. No I/O; stdlib only, because
the router process imports it.

A table may also carry rules (``Table.sticky``, ``Table.header_routes``), validated here
and compiled by ``rules.Matcher``: a matching step before the weighted pick, which itself
does not change.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from math import gcd
from typing import Any, Generic, Protocol, TypeVar

MAX_WEIGHT = 1_000_000
MAX_ROUTES = 256
MAX_UPSTREAMS = 1024
# Above this cycle length the schedule is computed on the fly instead of precomputed.
MAX_SCHEDULE = 10_000
MAX_HEADER_ROUTES = 64
MAX_VALUE = 1024
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,128}")
_VALUE = re.compile(r"[!-~](?:[ \t!-~]*[!-~])?")
# Names the router rewrites or drops before forwarding: routing on them cannot work.
_RESERVED = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "upgrade",
        "transfer-encoding",
        "content-length",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
    }
)

T = TypeVar("T")


class TableError(ValueError):
    """A table (from the admin API or the state file) is invalid; the message names the field."""


@dataclass(frozen=True)
class Route:
    """One revision's share of traffic: a relative weight over its upstreams ("host:port")."""

    revision: int
    weight: int
    upstreams: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"revision": self.revision, "weight": self.weight, "upstreams": list(self.upstreams)}


@dataclass(frozen=True)
class StickyRule:
    """Exactly one of ``cookie`` (a cookie name) and ``header`` (a header name) is set."""

    cookie: str | None = None
    header: str | None = None

    def to_json(self) -> dict[str, str]:
        return {"cookie": self.cookie} if self.cookie is not None else {"header": self.header or ""}


@dataclass(frozen=True)
class HeaderRule:
    """Requests whose ``header`` (any case) equals ``value`` (exactly) go to ``revision``."""

    header: str
    value: str
    revision: int

    def to_json(self) -> dict[str, Any]:
        return {"header": self.header, "value": self.value, "revision": self.revision}


@dataclass(frozen=True)
class Table:
    """A whole routing table: weighted routes and the optional rules applied before them."""

    routes: tuple[Route, ...] = ()
    sticky: StickyRule | None = None
    header_routes: tuple[HeaderRule, ...] = ()

    @property
    def has_rules(self) -> bool:
        return self.sticky is not None or bool(self.header_routes)


def _header_name(value: object, where: str) -> str:
    if not isinstance(value, str) or not _TOKEN.fullmatch(value):
        raise TableError(f"{where}: must be a header name (letters, digits and !#$%&'*+-.^_`|~)")
    if value.lower() in _RESERVED or value.lower().startswith("proxy-"):
        raise TableError(f"{where}: {value!r} is set or dropped by the router; use another header")
    return value


def parse_sticky(data: object) -> StickyRule | None:
    """``{"cookie": NAME}`` or ``{"header": NAME}`` (or null); raise TableError naming a field."""
    if data is None:
        return None
    if not isinstance(data, dict):
        raise TableError("sticky: must be an object with 'cookie' or 'header'")
    unknown = sorted(set(data) - {"cookie", "header"})
    if unknown:
        raise TableError(f"sticky.{unknown[0]}: unknown field (expected 'cookie' or 'header')")
    if len(data) != 1:
        raise TableError("sticky: give exactly one of 'cookie' and 'header'")
    if "cookie" in data:
        name = data["cookie"]
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            raise TableError("sticky.cookie: must be a cookie name (letters, digits and -._~)")
        return StickyRule(cookie=name)
    return StickyRule(header=_header_name(data["header"], "sticky.header"))


def parse_header_routes(data: object, revisions: set[int]) -> tuple[HeaderRule, ...]:
    """A list of header routes to revisions listed in the table; raise TableError naming a field."""
    if data is None:
        return ()
    if not isinstance(data, list):
        raise TableError("header_routes: must be a list")
    if len(data) > MAX_HEADER_ROUTES:
        raise TableError(f"header_routes: at most {MAX_HEADER_ROUTES} entries")
    rules: list[HeaderRule] = []
    for i, item in enumerate(data):
        where = f"header_routes[{i}]"
        if not isinstance(item, dict):
            raise TableError(f"{where}: must be an object with header, value and revision")
        unknown = sorted(set(item) - {"header", "value", "revision"})
        if unknown:
            raise TableError(f"{where}.{unknown[0]}: unknown field")
        header = _header_name(item.get("header"), f"{where}.header")
        value = item.get("value")
        if not isinstance(value, str) or len(value) > MAX_VALUE or not _VALUE.fullmatch(value):
            raise TableError(
                f"{where}.value: must be 1..{MAX_VALUE} visible ASCII characters "
                "(inner spaces allowed)"
            )
        revision = item.get("revision")
        if not isinstance(revision, int) or isinstance(revision, bool):
            raise TableError(f"{where}.revision: must be an integer")
        if revision not in revisions:
            raise TableError(f"{where}.revision: revision {revision} is not in backends")
        rules.append(HeaderRule(header, value, revision))
    return tuple(rules)


def split_address(address: str) -> tuple[str, int]:
    """``"host:port"`` -> ``(host, port)``; ``[v6]:port`` is accepted. Raises ValueError."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ValueError(f"{address!r} is not host:port")
    port = int(port_text)
    if not 0 < port < 65536:
        raise ValueError(f"port {port} is out of range 1..65535")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host or any(c.isspace() for c in host):
        raise ValueError(f"{address!r} has an invalid host")
    return host, port


def _strict_int(value: object) -> int | None:
    """``value`` when it is an int (not a bool), else None."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def parse_table(data: object) -> Table:
    """Validate ``{"backends": [...], "sticky"?, "header_routes"?}``; raise TableError naming
    the field."""
    if not isinstance(data, dict):
        raise TableError("body: must be a JSON object with a 'backends' list")
    unknown = sorted(set(data) - {"backends", "sticky", "header_routes"})
    if unknown:
        raise TableError(
            f"{unknown[0]}: unknown field (expected 'backends', 'sticky', 'header_routes')"
        )
    items = data.get("backends")
    if not isinstance(items, list):
        raise TableError("backends: must be a list")
    if len(items) > MAX_ROUTES:
        raise TableError(f"backends: at most {MAX_ROUTES} entries")
    routes: list[Route] = []
    seen: set[int] = set()
    for i, item in enumerate(items):
        where = f"backends[{i}]"
        if not isinstance(item, dict):
            raise TableError(f"{where}: must be an object")
        extra = sorted(set(item) - {"revision", "weight", "upstreams"})
        if extra:
            raise TableError(f"{where}.{extra[0]}: unknown field")
        revision = _strict_int(item.get("revision"))
        if revision is None or revision < 0:
            raise TableError(f"{where}.revision: must be a non-negative integer")
        if revision in seen:
            raise TableError(f"{where}.revision: revision {revision} is listed twice")
        seen.add(revision)
        weight = _strict_int(item.get("weight"))
        if weight is None or not 0 <= weight <= MAX_WEIGHT:
            raise TableError(f"{where}.weight: must be an integer in 0..{MAX_WEIGHT}")
        upstreams = item.get("upstreams")
        if not isinstance(upstreams, list) or len(upstreams) > MAX_UPSTREAMS:
            raise TableError(f"{where}.upstreams: must be a list of 'host:port' strings")
        for j, address in enumerate(upstreams):
            if not isinstance(address, str):
                raise TableError(f"{where}.upstreams[{j}]: must be a 'host:port' string")
            try:
                split_address(address)
            except ValueError as exc:
                raise TableError(f"{where}.upstreams[{j}]: {exc}") from None
        routes.append(Route(revision, weight, tuple(dict.fromkeys(upstreams))))
    sticky = parse_sticky(data.get("sticky"))
    header_routes = parse_header_routes(data.get("header_routes"), seen)
    return Table(tuple(routes), sticky, header_routes)


def table_json(table: Table) -> dict[str, Any]:
    """The JSON form ``parse_table`` accepts (``sticky`` null and ``header_routes`` empty
    when the table has no rules)."""
    return {
        "backends": [route.to_json() for route in table.routes],
        "sticky": table.sticky.to_json() if table.sticky is not None else None,
        "header_routes": [rule.to_json() for rule in table.header_routes],
    }


def smooth_schedule(weights: Sequence[int]) -> list[int]:
    """One full cycle of smooth weighted round-robin (nginx's algorithm) as item indices.

    Each index ``i`` appears ``weights[i] / g`` times (``g`` = gcd of the positive weights),
    spread as evenly as the algorithm allows; zero weights never appear.
    """
    positive = [w for w in weights if w > 0]
    if not positive:
        return []
    g = 0
    for w in positive:
        g = gcd(g, w)
    reduced = [w // g if w > 0 else 0 for w in weights]
    total = sum(reduced)
    current = [0] * len(reduced)
    out: list[int] = []
    for _ in range(total):
        best = -1
        for i, w in enumerate(reduced):
            if w:
                current[i] += w
                if best < 0 or current[i] > current[best]:
                    best = i
        current[best] -= total
        out.append(best)
    return out


class WeightedCycle(Generic[T]):
    """Picks items by smooth weighted round-robin; O(1) per pick for cycles ≤ MAX_SCHEDULE."""

    __slots__ = ("_current", "_i", "_items", "_n", "_schedule", "_total", "_weights")

    def __init__(self, items: Sequence[T], weights: Sequence[int]) -> None:
        if len(items) != len(weights):
            raise ValueError("items and weights differ in length")
        self._items = list(items)
        self._weights = [max(0, w) for w in weights]
        self._total = sum(self._weights)
        self._current = [0] * len(self._items)
        self._i = 0
        self._schedule: list[T] = []
        if self._total:
            positive = [w for w in self._weights if w]
            g = 0
            for w in positive:
                g = gcd(g, w)
            if self._total // g <= MAX_SCHEDULE:
                self._schedule = [self._items[i] for i in smooth_schedule(self._weights)]
        self._n = len(self._schedule)

    @property
    def empty(self) -> bool:
        """True when no item has a positive weight (every pick would be None)."""
        return self._total == 0

    def next(self) -> T | None:
        """The next item, or None when every weight is zero."""
        n = self._n
        if n:
            i = self._i
            self._i = i + 1 if i + 1 < n else 0
            return self._schedule[i]
        if not self._total:
            return None
        best = -1
        current = self._current
        for i, w in enumerate(self._weights):
            if w:
                current[i] += w
                if best < 0 or current[i] > current[best]:
                    best = i
        current[best] -= self._total
        return self._items[best]


class Loaded(Protocol):
    """Anything with a count of requests in flight (an upstream)."""

    in_flight: int


L = TypeVar("L", bound=Loaded)


def pick_least_loaded(items: Sequence[L], start: int) -> L:
    """The item with the fewest requests in flight; ties go to the first from ``start``.

    Callers rotate ``start`` on every pick so that equal loads are served round-robin.
    ``items`` must not be empty.
    """
    n = len(items)
    if n == 1:
        return items[0]
    best = items[start % n]
    low = best.in_flight
    if low == 0:
        return best
    for k in range(1, n):
        item = items[(start + k) % n]
        if item.in_flight < low:
            best = item
            low = item.in_flight
            if low == 0:
                break
    return best
