"""Port allocation for local instances.

Ports come from below the kernel's ephemeral range (``ip_local_port_range``): a port that
``bind(0)`` hands out lies inside that range, where the router's and probes' outgoing
connections take their local ports, so one of them could occupy it before the app listens.
Below the range only listeners compete, and a trial bind proves the port free right now.
Callers: ``platform.LocalPlatform.start_instance``.
"""

from __future__ import annotations

import contextlib
import random
import socket
from collections.abc import Collection
from pathlib import Path

from baepo.errors import ExternalError

DEFAULT_LOW = 20000
_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def ephemeral_range() -> tuple[int, int]:
    """The kernel's range for outgoing connections' local ports (Linux default 32768-60999)."""
    with contextlib.suppress(OSError, ValueError):
        low, high = _RANGE_FILE.read_text().split()[:2]
        return int(low), int(high)
    return 32768, 60999


def can_bind(host: str, port: int) -> bool:
    """True when nothing holds ``host:port`` (no SO_REUSEADDR: TIME_WAIT counts as taken)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def allocate_port(
    host: str,
    in_use: Collection[int],
    *,
    low: int = DEFAULT_LOW,
    rng: random.Random | None = None,
    attempts: int = 200,
) -> int:
    """A port on ``host`` that is free now and not in ``in_use`` (ports of known instances)."""
    chooser = rng or random.Random()
    high = ephemeral_range()[0]
    if high - low >= 1000:
        for _ in range(attempts):
            port = chooser.randrange(low, high)
            if port not in in_use and can_bind(host, port):
                return port
    for _ in range(attempts):  # a kernel without room below its ephemeral range
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((host, 0))
            port = int(probe.getsockname()[1])
        if port not in in_use:
            return port
    raise ExternalError(f"no free port on {host}", hint="stop some instances and retry")
