"""Live per-revision rates: the routers' counters sampled several times a second.

The controller takes a snapshot of each app's router counters on its passes (at most once
per ``INTERVAL``) and keeps two histories: every snapshot of the last ``FINE`` seconds, and
one per ``COARSE_STEP`` for ``KEEP`` seconds. ``rates`` turns the snapshot closest to
``seconds`` ago and the newest one into rates with ``core.latency.windows``: requests/s, 5xx
and error rates and latency percentiles per revision, as ``baepo status``, the API, metric
analysis (the builtin provider) and the rollback guards read them. Counters that start again
from zero (a replaced router worker: ``RevisionStats.started`` changed, or a count went down)
are carried on by ``Continuity``, so a window across the restart misses only what the old
counters gained after the last snapshot, and never sees negative counts.
``latest`` gives the newest counters themselves (the default canary's judgement).
Callers: ``controller.reconciler`` (sampling), the API and providers (reading).
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable

from baepo.core.latency import WindowRates, windows
from baepo.core.ports import RevisionStats, Router

INTERVAL = 0.25
WINDOW = 10.0
FINE = 30.0
COARSE_STEP = 1.0
KEEP = 600.0

Sample = tuple[float, list[RevisionStats]]


def _add(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    return {key: a.get(key, 0) + b.get(key, 0) for key in a.keys() | b.keys()}


def _plus(now: RevisionStats, carried: RevisionStats) -> RevisionStats:
    """``now``'s counters plus those of earlier runs (``carried``), in ``carried``'s series."""
    return RevisionStats(
        revision=now.revision,
        requests=now.requests + carried.requests,
        status=_add(now.status, carried.status),
        latency_buckets=_add(now.latency_buckets, carried.latency_buckets),
        latency_sum=now.latency_sum + carried.latency_sum,
        in_flight=now.in_flight,
        started=carried.started,
    )


def restarted(last: RevisionStats, now: RevisionStats) -> bool:
    """True when ``now`` counts from zero again since ``last`` (a new router run)."""
    new_run = bool(last.started and now.started and now.started != last.started)
    return new_run or now.requests < last.requests


class Continuity:
    """One monotonic series per revision out of counters that sometimes restart from zero."""

    def __init__(self) -> None:
        self.last: dict[int, RevisionStats] = {}
        self.carried: dict[int, RevisionStats] = {}

    def follow(self, stats: list[RevisionStats]) -> list[RevisionStats]:
        """The snapshot ``stats`` with the counts of earlier runs added."""
        out: list[RevisionStats] = []
        for now in stats:
            last = self.last.get(now.revision)
            if last is not None and restarted(last, now):
                carried = self.carried.get(now.revision)
                self.carried[now.revision] = last if carried is None else _plus(last, carried)
            self.last[now.revision] = now
            carried = self.carried.get(now.revision)
            out.append(now if carried is None else _plus(now, carried))
        return out


class Sampler:
    """Recent snapshots of every app's router counters."""

    def __init__(self, router: Router, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.router = router
        self.clock = clock
        self._fine: dict[tuple[str, str], deque[Sample]] = {}
        self._coarse: dict[tuple[str, str], deque[Sample]] = {}
        self._continuity: dict[tuple[str, str], Continuity] = {}

    async def sample(self, app: str, env: str) -> bool:
        """Take a snapshot when the last one is older than ``INTERVAL``; True if taken."""
        fine = self._fine.setdefault((app, env), deque())
        now = self.clock()
        if fine and now - fine[-1][0] < INTERVAL:
            return False
        sample = (now, await self.router.stats(app, env))
        self.add(app, env, sample)
        return True

    def add(self, app: str, env: str, sample: Sample) -> None:
        """Record a snapshot taken at ``sample[0]`` (monotonic seconds)."""
        fine = self._fine.setdefault((app, env), deque())
        coarse = self._coarse.setdefault((app, env), deque())
        continuity = self._continuity.setdefault((app, env), Continuity())
        sample = (sample[0], continuity.follow(sample[1]))
        now = sample[0]
        fine.append(sample)
        while len(fine) > 2 and now - fine[1][0] >= FINE:
            fine.popleft()
        if not coarse or now - coarse[-1][0] >= COARSE_STEP:
            coarse.append(sample)
        while len(coarse) > 2 and now - coarse[1][0] >= KEEP:
            coarse.popleft()

    def rates(self, app: str, env: str, seconds: float | None = None) -> dict[int, WindowRates]:
        """Per-revision rates over about the last ``seconds`` (default ``WINDOW``), or over
        what was sampled when that is less; empty until two snapshots exist."""
        seconds = WINDOW if seconds is None else seconds
        fine = self._fine.get((app, env))
        if not fine or len(fine) < 2:
            return {}
        end, after = fine[-1]
        history = fine if seconds <= FINE else self._coarse.get((app, env), fine)
        start, before = history[0]
        for at, stats in reversed(history):
            if end - at >= seconds:
                start, before = at, stats
                break
        if end - start <= 0:
            return {}
        return windows(before, after, end - start)

    def latest(self, app: str, env: str) -> dict[int, RevisionStats]:
        """The newest snapshot's counters per revision (carried across router restarts), or
        empty before the first one: the default canary counts from these."""
        fine = self._fine.get((app, env))
        if not fine:
            return {}
        return {stats.revision: stats for stats in fine[-1][1]}

    def series(
        self, app: str, env: str, seconds: float, step: float
    ) -> list[dict[int, WindowRates]]:
        """Rates per ``step``-second slice over about the last ``seconds``, oldest first (from
        the once-a-second history; a slice is as long as its snapshots are apart)."""
        coarse = self._coarse.get((app, env))
        if not coarse or len(coarse) < 2:
            return []
        end = coarse[-1][0]
        picked: list[Sample] = []
        for at, stats in reversed(coarse):
            if end - at > seconds + COARSE_STEP / 2:
                break
            if not picked or picked[-1][0] - at >= step - COARSE_STEP / 2:
                picked.append((at, stats))
        picked.reverse()
        return [
            windows(before, after, later - earlier)
            for (earlier, before), (later, after) in itertools.pairwise(picked)
            if later > earlier
        ]

    def sampled_ago(self, app: str, env: str) -> float | None:
        """Seconds since the newest snapshot of app+env (None before the first)."""
        fine = self._fine.get((app, env))
        return self.clock() - fine[-1][0] if fine else None

    def forget(self, app: str, env: str) -> None:
        """Drop an app's history (``baepo down``)."""
        self._fine.pop((app, env), None)
        self._coarse.pop((app, env), None)
        self._continuity.pop((app, env), None)
