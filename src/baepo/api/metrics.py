"""The server's Prometheus endpoint: ``GET /metrics``, read from the store and the controller.

``app.create_app`` includes :data:`router`; nothing is counted on the request or reconcile
path except the controller's own pass histogram. :class:`ServerCollector` builds every family
at scrape time from the store's history (rollouts, analysis runs; read at most once a second
however often it is scraped) and from the controller's memory (routing tables, passes).
Families, labelled by ``app`` and ``env``:

- ``baepo_deployments_total{outcome}``: finished rollouts by final phase (:data:`OUTCOMES`);
- ``baepo_rollout_duration_seconds{outcome}``: histogram of ``started_at`` → ``finished_at``;
- ``baepo_time_to_rollback_seconds``: the same for rolled-back rollouts only;
- ``baepo_analysis_runs_total{kind,verdict}``: finished analysis runs;
- ``baepo_active_rollouts{phase}``, ``baepo_rollout_started_timestamp_seconds{revision}``;
- ``baepo_traffic_weight{revision}``: the main listener's table last pushed;

plus ``baepo_reconcile_duration_seconds``, ``baepo_reconcile_passes_total``,
``baepo_controller_longest_pass_seconds``, ``baepo_controller_leader`` (1 while this
replica leads) and ``baepo_build_info{version}``.
Counters derived from the store restart from the history the store keeps, so they survive a
server restart.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from fastapi import APIRouter, Request, Response
from prometheus_client import generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from baepo import __version__
from baepo.api.auth import principal
from baepo.api.runtime import Runtime
from baepo.controller.loop import Controller
from baepo.core.model import AnalysisPhase, AnalysisRun, Rollout, RolloutPhase
from baepo.core.ports import Store

# The text format every Prometheus server reads.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# How long one read of the store serves scrapes.
CACHE_SECONDS = 1.0
# More analysis runs than one app+environment will ever keep.
ALL_RUNS = 1_000_000

# A finished rollout's outcome, by its final phase.
OUTCOMES = {
    RolloutPhase.HEALTHY: "succeeded",  # the new revision became stable
    RolloutPhase.ROLLED_BACK: "rolled_back",  # a failed check or guard sent traffic back
    RolloutPhase.ABORTED: "aborted",  # someone ran ``baepo abort``
    RolloutPhase.FAILED: "failed",  # could not proceed, with no stable revision to go back to
    RolloutPhase.SUPERSEDED: "superseded",  # replaced by a newer deploy before it finished
}
ACTIVE_PHASES = tuple(phase for phase in RolloutPhase if not phase.terminal)
VERDICTS = tuple(phase.value for phase in AnalysisPhase if phase.terminal)

# Rollouts take from seconds (a rolling update of one instance) to hours (a slow canary).
DURATION_BUCKETS = (5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0)
ROLLBACK_BUCKETS = (1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0)


@dataclass(frozen=True)
class Snapshot:
    """What the store holds, per app+environment, as of ``taken`` (a monotonic time)."""

    taken: float
    rollouts: dict[tuple[str, str], list[Rollout]] = field(default_factory=dict)
    runs: dict[tuple[str, str], list[AnalysisRun]] = field(default_factory=dict)


def read_store(store: Store, taken: float) -> Snapshot:
    """Every rollout and analysis run of every app+environment (blocking; one pass)."""
    snapshot = Snapshot(taken)
    for app in store.list_apps():
        key = (app.app, app.env)
        snapshot.rollouts[key] = store.list_rollouts(app.app, app.env)
        snapshot.runs[key] = store.list_analysis_runs(app.app, app.env, limit=ALL_RUNS)
    return snapshot


def histogram(
    family: HistogramMetricFamily,
    labels: Sequence[str],
    values: Iterable[float],
    bounds: Sequence[float],
) -> None:
    """Add one cumulative histogram of ``values`` to ``family``."""
    observed = sorted(values)
    buckets = [(str(b), float(sum(1 for v in observed if v <= b))) for b in bounds]
    buckets.append(("+Inf", float(len(observed))))
    family.add_metric(list(labels), buckets, sum(observed))


class ServerCollector(Collector):
    """Yields the server's metric families at scrape time; safe to call from any thread."""

    def __init__(
        self,
        store: Store,
        controller: Controller,
        *,
        clock: Callable[[], float] = time.monotonic,
        cache_seconds: float = CACHE_SECONDS,
    ) -> None:
        self.store = store
        self.controller = controller
        self.clock = clock
        self.cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None

    def snapshot(self) -> Snapshot:
        """The store's contents, read again when the last read is older than the cache."""
        with self._lock:
            now = self.clock()
            if self._snapshot is None or now - self._snapshot.taken >= self.cache_seconds:
                self._snapshot = read_store(self.store, now)
            return self._snapshot

    def collect(self) -> Iterator[Metric]:
        snapshot = self.snapshot()
        yield from self._rollouts(snapshot)
        yield from self._analysis(snapshot)
        yield from self._controller(snapshot)
        info = GaugeMetricFamily(
            "baepo_build_info", "Always 1; the server's version.", labels=["version"]
        )
        info.add_metric([__version__], 1)
        yield info

    def _rollouts(self, snapshot: Snapshot) -> Iterator[Metric]:
        deployments = CounterMetricFamily(
            "baepo_deployments",
            "Rollouts that finished, by outcome (succeeded, rolled_back, aborted, failed, "
            "superseded).",
            labels=["app", "env", "outcome"],
        )
        durations = HistogramMetricFamily(
            "baepo_rollout_duration_seconds",
            "Time from a rollout's start to its end, for finished rollouts, by outcome.",
            labels=["app", "env", "outcome"],
        )
        to_rollback = HistogramMetricFamily(
            "baepo_time_to_rollback_seconds",
            "For rolled-back rollouts: time from the rollout's start to the decision to roll "
            "back, when traffic is sent back to the stable revision.",
            labels=["app", "env"],
        )
        active = GaugeMetricFamily(
            "baepo_active_rollouts",
            "1 for the phase of the rollout under way for app+env, 0 for the other phases.",
            labels=["app", "env", "phase"],
        )
        started = GaugeMetricFamily(
            "baepo_rollout_started_timestamp_seconds",
            "Unix time the rollout under way started (only while one is under way).",
            labels=["app", "env", "revision"],
        )
        for (app, env), rollouts in sorted(snapshot.rollouts.items()):
            finished: dict[str, list[float]] = defaultdict(list)
            current: Rollout | None = None
            for rollout in rollouts:
                if not rollout.phase.terminal:
                    current = rollout
                elif rollout.finished_at is not None:
                    seconds = (rollout.finished_at - rollout.started_at).total_seconds()
                    finished[OUTCOMES[rollout.phase]].append(max(seconds, 0.0))
            for outcome in OUTCOMES.values():
                values = finished.get(outcome, [])
                deployments.add_metric([app, env, outcome], len(values))
                histogram(durations, [app, env, outcome], values, DURATION_BUCKETS)
            histogram(to_rollback, [app, env], finished.get("rolled_back", []), ROLLBACK_BUCKETS)
            for phase in ACTIVE_PHASES:
                on = current is not None and current.phase == phase
                active.add_metric([app, env, phase.value], 1 if on else 0)
            if current is not None:
                labels = [app, env, str(current.revision)]
                started.add_metric(labels, current.started_at.timestamp())
        yield from (deployments, durations, to_rollback, active, started)

    def _analysis(self, snapshot: Snapshot) -> Iterator[Metric]:
        runs = CounterMetricFamily(
            "baepo_analysis_runs",
            "Analysis runs that finished, by kind (step, background, pre_promotion, "
            "post_promotion, guards) and verdict.",
            labels=["app", "env", "kind", "verdict"],
        )
        for (app, env), items in sorted(snapshot.runs.items()):
            counts = Counter((run.kind, run.phase.value) for run in items if run.phase.terminal)
            for kind in sorted({run.kind for run in items}):
                for verdict in VERDICTS:
                    runs.add_metric([app, env, kind, verdict], counts[(kind, verdict)])
        yield runs

    def _controller(self, snapshot: Snapshot) -> Iterator[Metric]:
        weights = GaugeMetricFamily(
            "baepo_traffic_weight",
            "Weight of each revision in the main listener's routing table last pushed to "
            "the router; a revision's share of requests is its weight over their sum.",
            labels=["app", "env", "revision"],
        )
        for app, env in sorted(snapshot.rollouts):
            for backend in self.controller.reconciler.table(app, env):
                weights.add_metric([app, env, str(backend.revision)], backend.weight)
        passes = CounterMetricFamily(
            "baepo_reconcile_passes",
            "Controller passes over every app+environment since the server started.",
        )
        passes.add_metric([], self.controller.passes)
        dropped = CounterMetricFamily(
            "baepo_events_dropped",
            "Events the controller could not record in the store (a full disk, an unreachable "
            "database) since the server started; each is in the server log with its cause.",
        )
        dropped.add_metric([], self.controller.dropped_events.count)
        yield dropped
        yield weights
        for metric in self.controller.pass_seconds.collect():
            # Like every other family here, without the ``_created`` series.
            metric.samples = [s for s in metric.samples if not s.name.endswith("_created")]
            yield metric
        yield passes
        yield from self.controller.longest_pass_gauge.collect()
        yield from self.controller.leader_gauge.collect()


def registry_for(runtime: Runtime) -> CollectorRegistry:
    """A registry holding only the server's collector (no process or platform metrics)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServerCollector(runtime.store, runtime.controller))
    return registry


router = APIRouter(tags=["server"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text format"}},
)
async def metrics(request: Request) -> Response:
    """The server's metrics in Prometheus text format (version 0.0.4). With auth required,
    Prometheus sends a token of any role (``authorization: {credentials: ...}``)."""
    await asyncio.to_thread(principal, request)
    registry = getattr(request.app.state, "metrics_registry", None)
    if registry is None:
        registry = registry_for(request.app.state.runtime)
        request.app.state.metrics_registry = registry
    body = await asyncio.to_thread(generate_latest, registry)
    return Response(content=body, media_type=CONTENT_TYPE)
