"""Checks across the addresses a spec makes baepo listen on: the router's, its metrics
endpoint's and the blue-green preview's. Two of them on one port of one address could never
both bind, so the deploy would fail half-way; the loader refuses the spec instead.

Callers: ``spec.loader`` (:func:`check_listeners`, after the models are validated).
"""

from __future__ import annotations

from collections.abc import Callable

from baepo.spec.base import LISTEN_RE
from baepo.spec.models import Spec

Loc = tuple[str | int, ...]

_WILDCARDS = frozenset({"0.0.0.0", "::", ""})
_LOCALHOST = frozenset({"localhost", "127.0.0.1", "::1"})


def split_listen(address: str) -> tuple[str, int]:
    """``(host, port)`` of a ``host:port`` address the models accepted; the host lower-case,
    without IPv6 brackets."""
    match = LISTEN_RE.match(address)
    if match is None:
        raise ValueError(f"not a host:port address: {address!r}")
    return match.group("host").strip("[]").lower(), int(match.group("port"))


def clash(first: str, second: str) -> bool:
    """Whether sockets bound to ``first`` and ``second`` would fight for the same port: the
    same port on the same host, or on a wildcard host (``0.0.0.0``, ``::``) and any other, or
    on ``localhost`` and a loopback address it resolves to. Pure."""
    (host_a, port_a), (host_b, port_b) = split_listen(first), split_listen(second)
    if port_a != port_b:
        return False
    if host_a == host_b or host_a in _WILDCARDS or host_b in _WILDCARDS:
        return True
    return "localhost" in (host_a, host_b) and {host_a, host_b} <= _LOCALHOST


def check_listeners(
    spec: Spec, set_by_overlay: Callable[[Loc], bool] = lambda loc: False
) -> list[tuple[Loc, str]]:
    """Each listener that clashes with one declared before it, located at the later key, or
    at the earlier one when only that one was set by the environment's overlay (so the
    problem points where the clash was made)."""
    listeners: list[tuple[Loc, str, str]] = [(("router", "listen"), "listen", spec.router.listen)]
    if spec.router.metrics_listen is not None:
        listeners.append(
            (("router", "metrics_listen"), "metrics_listen", spec.router.metrics_listen)
        )
    blue_green = spec.strategy.blue_green
    if blue_green is not None and blue_green.preview_listen is not None:
        loc: Loc = ("strategy", "blue_green", "preview_listen")
        listeners.append((loc, "preview_listen", blue_green.preview_listen))
    findings: list[tuple[Loc, str]] = []
    for index, later in enumerate(listeners):
        for earlier in listeners[:index]:
            if clash(later[2], earlier[2]):
                moved = set_by_overlay(earlier[0]) and not set_by_overlay(later[0])
                (loc, name, address), (other_loc, other_name, other) = (
                    (earlier, later) if moved else (later, earlier)
                )
                where = ".".join(str(part) for part in other_loc)
                findings.append(
                    (
                        loc,
                        f"{name} must differ from {other_name} ({where}: {other}): both would "
                        f"listen on port {split_listen(address)[1]} of the same address; "
                        "give it another port",
                    )
                )
                break
    return findings
