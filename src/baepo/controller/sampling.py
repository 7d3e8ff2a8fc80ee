"""Live per-revision rates: the routers' counters sampled about once a second.

The controller takes a snapshot of each app's router counters on its passes (at most once
per ``INTERVAL``), keeps the last ``WINDOW`` seconds of them, and turns the oldest and newest
into rates with ``core.latency.windows``: requests/s, 5xx and error rates and latency
percentiles per revision, as ``baepo status`` and the API show them.
Callers: ``controller.reconciler`` (sampling), the API (reading).
"""

from __future__ import annotations

import time
from collections import deque

from baepo.core.latency import WindowRates, windows
from baepo.core.ports import RevisionStats, Router

INTERVAL = 1.0
WINDOW = 10.0

Sample = tuple[float, list[RevisionStats]]


class Sampler:
    """Recent snapshots of every app's router counters."""

    def __init__(self, router: Router) -> None:
        self.router = router
        self._samples: dict[tuple[str, str], deque[Sample]] = {}

    async def sample(self, app: str, env: str) -> None:
        """Take a snapshot when the last one is older than ``INTERVAL``."""
        samples = self._samples.setdefault((app, env), deque())
        now = time.monotonic()
        if samples and now - samples[-1][0] < INTERVAL:
            return
        samples.append((now, await self.router.stats(app, env)))
        while len(samples) > 2 and now - samples[1][0] >= WINDOW:
            samples.popleft()

    def rates(self, app: str, env: str) -> dict[int, WindowRates]:
        """Per-revision rates over the sampled window (empty until two snapshots exist)."""
        samples = self._samples.get((app, env))
        if not samples or len(samples) < 2:
            return {}
        (start, before), (end, after) = samples[0], samples[-1]
        return windows(before, after, end - start)
