"""The routing table and the pure selection logic of the built-in router.

A table is a list of routes, one per revision: ``{revision, weight, upstreams}``. The proxy
(``runtime``) compiles a table into a ``WeightedCycle`` of revisions and picks an upstream of the
chosen revision with ``pick_least_loaded``. Validation (``parse_table``) is used by the admin
server and the state file loader and names the offending field. No I/O; stdlib only, because
the router process imports it.

Later extensions (header matches, sticky sessions by cookie or header hash) add fields to
``Route`` and a matching step before the weighted pick; the cycle itself does not change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from math import gcd
from typing import Any, Generic, Protocol, TypeVar

MAX_WEIGHT = 1_000_000
MAX_ROUTES = 256
MAX_UPSTREAMS = 1024
# Above this cycle length the schedule is computed on the fly instead of precomputed.
MAX_SCHEDULE = 10_000

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


def parse_table(data: object) -> list[Route]:
    """Validate ``{"backends": [...]}`` and return the routes; raise TableError naming a field."""
    if not isinstance(data, dict):
        raise TableError("body: must be a JSON object with a 'backends' list")
    unknown = sorted(set(data) - {"backends"})
    if unknown:
        raise TableError(f"{unknown[0]}: unknown field (expected only 'backends')")
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
    return routes


def table_json(routes: Sequence[Route]) -> dict[str, Any]:
    """The JSON form ``parse_table`` accepts."""
    return {"backends": [route.to_json() for route in routes]}


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
