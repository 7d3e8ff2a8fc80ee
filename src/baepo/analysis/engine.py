"""The analysis engine: runs the analyses strategies ask for, measuring on schedule.

Each reconcile pass hands the engine the :class:`AnalysisRequest` s of the active rollout's
plan (:meth:`AnalysisEngine.sync`). A request seen for the first time becomes an
:class:`AnalysisRun` in the store and an asyncio task that measures each metric at its
``initial_delay`` and then every ``interval``, stores every :class:`Measurement`, and ends the
run as soon as its verdict is known (see ``analysis.verdict``). A background run has no
``count`` to reach: it measures until it is no longer requested (the final switch). A run no
longer requested is ended by its owner: at its planned end it is judged on what it has;
ended by anything else (a step skipped by ``baepo promote``, a rollout that rolled back,
was aborted or superseded) it is ``cancelled`` with the reason.
The strategies read the runs' phases (:meth:`AnalysisEngine.runs`) on the next pass.

A pass decides on one consistent view: it holds :meth:`AnalysisEngine.deciding` from
reading the runs until it has acted on them (routed, persisted the rollout, synced the
runs), and a measuring task records a measurement and its verdict only while holding the
same lock. So no verdict lands between the pass's read and its decision (a failed verdict
is never overtaken by a step completed on an older view), and ending a run never races a
measurement being recorded: a measurement is recorded, and counted, only while its run is
running and its metric still short of its ``count``. A verdict, once reached, is final.

Runs survive a controller restart: a run still ``running`` in the store is resumed, its next
measurement due one interval after its last one. Callers: the controller's reconciler.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from baepo.analysis.measure import MeasureContext, MeasurementError, MetricProvider
from baepo.analysis.templates import ConditionPair, compile_templates
from baepo.analysis.verdict import (
    Tally,
    assess,
    ended_phase,
    metric_phase,
    metric_reason,
    recent,
    run_phase,
)
from baepo.core.latency import WindowRates
from baepo.core.model import (
    AnalysisPhase,
    AnalysisRequest,
    AnalysisRun,
    Measurement,
    Rollout,
    RolloutPhase,
)
from baepo.core.ports import Store
from baepo.errors import BaepoError
from baepo.spec.analysis import MetricSpec
from baepo.spec.models import Spec

log = logging.getLogger(__name__)

MEASURE_TIMEOUT = 30.0
"""Seconds a provider without a timeout of its own may take for one measurement."""

ALL = 1_000_000
"""Measurements read back to judge a run: all of them (a background run of a long canary
can take thousands)."""

NO_DATA_GRACE = 3
"""Intervals a source may have nothing to measure (no requests yet) before that is recorded as
an inconclusive measurement; until then it is retried every second and nothing is recorded."""

_KINDS_NOUN = {
    "step": "analysis",
    "background": "background analysis",
    "pre_promotion": "pre-promotion analysis",
    "post_promotion": "post-promotion analysis",
}


class SeriesSource(Protocol):
    """Per-step rates of an app's revisions (the controller's router samples)."""

    def series(
        self, app: str, env: str, seconds: float, step: float
    ) -> list[dict[int, WindowRates]]: ...


def metric_key(template: str, metric: str) -> str:
    return f"{template}/{metric}"


class AnalysisEngine:
    """Starts, resumes and ends analysis runs; one task per running run."""

    def __init__(
        self,
        store: Store,
        providers: Mapping[str, MetricProvider],
        *,
        clock: Callable[[], datetime],
        wake: Callable[[], None] = lambda: None,
        series: SeriesSource | None = None,
    ) -> None:
        self.series = series
        self.store = store
        self.providers = providers
        self.clock = clock
        self.wake = wake
        self._runs: dict[int, dict[str, AnalysisRun]] = {}  # rollout id -> key -> run
        self._tasks: dict[int, asyncio.Task[None]] = {}  # run id -> its task
        self._stopped: set[int] = set()  # runs whose task was told to stop
        self._lock = asyncio.Lock()
        self.allowed_env: frozenset[str] = frozenset()  # what {{env.NAME}} may name

    @contextlib.asynccontextmanager
    async def deciding(self) -> AsyncIterator[None]:
        """Hold verdicts back while a pass reads the runs and acts on them: no measurement
        and no verdict is recorded inside. ``sync`` and ``finish`` are called inside."""
        async with self._lock:
            yield

    def rollouts_of(self, app: str, env: str) -> list[int]:
        """The rollouts of app+env whose runs this engine holds (to end those of a rollout
        that ended outside a pass: an abort, an undo, a newer deploy)."""
        return [
            rollout_id
            for rollout_id, runs in self._runs.items()
            if any((run.app, run.env) == (app, env) for run in runs.values())
        ]

    async def runs(self, rollout: Rollout) -> dict[str, AnalysisRun]:
        """The rollout's runs by key (loaded from the store on first use)."""
        if rollout.id not in self._runs:
            stored = await asyncio.to_thread(
                self.store.list_analysis_runs, rollout.app, rollout.env, rollout_id=rollout.id
            )
            self._runs[rollout.id] = {run.key: run for run in stored}
        return dict(self._runs[rollout.id])

    async def sync(
        self,
        rollout: Rollout,
        spec: Spec,
        spec_dir: str,
        requests: Sequence[AnalysisRequest],
    ) -> None:
        """Start requested runs not started yet, resume running ones without a task, and end
        running ones no longer requested: a background run at its planned end (judged on
        what it has), a blocking one skipped by ``baepo promote`` (cancelled).
        Call inside :meth:`deciding`."""
        self._held("sync")
        runs = await self.runs(rollout)
        wanted = {request.key: request for request in requests}
        for key, request in wanted.items():
            run = runs.get(key)
            if run is None:
                run = await self._create(rollout, request)
            if run.phase == AnalysisPhase.RUNNING and run.id not in self._tasks:
                self._start(run, request, spec, spec_dir)
        for key, run in runs.items():
            if run.phase != AnalysisPhase.RUNNING or key in wanted:
                continue
            if run.metrics.get("blocking", True):
                await self._end(run, spec, "skipped: the rollout went on (baepo promote)",
                                cancelled=True)  # fmt: skip
            else:
                await self._end(run, spec, "ended at the final switch")

    async def finish(self, rollout: Rollout, spec: Spec) -> None:
        """End every run of a rollout that reached a final phase, then forget it: cancelled
        with the reason unless the rollout became healthy (then judged on what it has).
        Call inside :meth:`deciding`."""
        self._held("finish")
        cancelled = rollout.phase != RolloutPhase.HEALTHY
        why = ended_by(rollout)
        for run in (await self.runs(rollout)).values():
            if run.phase == AnalysisPhase.RUNNING:
                await self._end(run, spec, why, cancelled=cancelled)
        self._runs.pop(rollout.id, None)

    def _held(self, what: str) -> None:
        if not self._lock.locked():
            raise RuntimeError(f"AnalysisEngine.{what} must be called inside deciding()")

    async def close(self) -> None:
        """Stop measuring (at shutdown); running runs stay running and resume on restart."""
        tasks = list(self._tasks.values())
        for run_id in list(self._tasks):
            self._stop(run_id)
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

    def _stop(self, run_id: int) -> None:
        """Cancel the run's task; it also stops at its next check should the cancellation be
        lost (``asyncio.wait_for`` can swallow one that arrives as its wait ends)."""
        self._stopped.add(run_id)
        task = self._tasks.pop(run_id, None)
        if task is not None:
            task.cancel()

    # -- runs ------------------------------------------------------------------------------

    async def _create(self, rollout: Rollout, request: AnalysisRequest) -> AnalysisRun:
        noun = _KINDS_NOUN.get(request.kind, request.kind)
        run = AnalysisRun(
            app=rollout.app,
            env=rollout.env,
            rollout_id=rollout.id,
            revision=request.revision,
            baseline=request.baseline,
            kind=request.kind,
            key=request.key,
            templates=list(request.templates),
            phase=AnalysisPhase.RUNNING,
            message=f"{noun} of revision {request.revision} started",
            started_at=self.clock(),
            metrics={"blocking": request.blocking, "args": dict(request.args)},
        )
        saved = await asyncio.to_thread(self.store.create_analysis_run, run)
        self._runs[rollout.id][saved.key] = saved
        return saved

    def _start(self, run: AnalysisRun, request: AnalysisRequest, spec: Spec, spec_dir: str) -> None:
        self._stopped.discard(run.id)
        task = asyncio.create_task(self._measure_run(run, request, spec, spec_dir))
        self._tasks[run.id] = task
        task.add_done_callback(lambda _task: self._forget(run.id, _task))

    def _forget(self, run_id: int, task: asyncio.Task[None]) -> None:
        if self._tasks.get(run_id) is task:
            del self._tasks[run_id]

    def _metrics(self, run: AnalysisRun, spec: Spec) -> list[tuple[str, MetricSpec]]:
        """Each template's metrics; a template with a judge is one metric, its judgements."""
        found: list[tuple[str, MetricSpec]] = []
        for template in run.templates:
            judge = spec.analysis[template].judge
            if judge is not None:
                from baepo.analysis.judging import judgement_metric

                found.append((template, judgement_metric(judge)))
            else:
                found += [(template, metric) for metric in spec.analysis[template].metrics]
        return found

    def _count(self, run: AnalysisRun, metric: MetricSpec) -> int | None:
        """How many measurements end the metric: ``count`` (one without it) for a blocking
        run; none for a background run, which measures until the final switch."""
        if not run.metrics.get("blocking", True):
            return None
        return metric.count if metric.count is not None else 1

    def _current(self, run: AnalysisRun) -> AnalysisRun:
        return self._runs.get(run.rollout_id, {}).get(run.key, run)

    async def _end(
        self, run: AnalysisRun, spec: Spec, why: str, *, cancelled: bool = False
    ) -> None:
        """Stop measuring ``run`` and judge it (inside ``deciding``: no measurement is being
        recorded, so every one taken is counted and none lands afterwards). The task is not
        awaited: it may be waiting for the lock held here (a cancellation that
        ``asyncio.wait_for`` swallowed), and finds its run ended once it has it."""
        self._stop(run.id)
        fresh = self._current(run)
        if fresh.phase != AnalysisPhase.RUNNING:
            return
        measurements = await asyncio.to_thread(self.store.list_measurements, run.id, limit=ALL)
        await self._conclude(fresh, spec, measurements, ended=why, cancelled=cancelled)

    async def _conclude(
        self,
        run: AnalysisRun,
        spec: Spec,
        measurements: Sequence[Measurement],
        *,
        ended: str | None = None,
        cancelled: bool = False,
    ) -> AnalysisRun:
        """Recompute every metric's phase and reason and the run's verdict; save the run.
        A run that already has a verdict keeps it."""
        if self._current(run).phase.terminal:
            return self._current(run)
        by_metric: dict[str, list[Measurement]] = {}
        for measurement in measurements:
            key = metric_key(measurement.template, measurement.metric)
            by_metric.setdefault(key, []).append(measurement)
        summaries: dict[str, Any] = {}
        phases: dict[str, AnalysisPhase] = {}
        dry: list[str] = []
        for template, metric in self._metrics(run, spec):
            key = metric_key(template, metric.name)
            taken = by_metric.get(key, [])
            count = self._count(run, metric)
            tally = Tally.of(taken)
            phase = metric_phase(metric, tally, count)
            if ended is not None and phase == AnalysisPhase.RUNNING:
                phase = ended_phase(metric, tally, cancelled=cancelled)
            phases[key] = phase
            if metric.dry_run:
                dry.append(key)
            summaries[key] = {
                "phase": phase.value,
                "dry_run": metric.dry_run,
                "count": count,
                "taken": tally.taken,
                "failed": tally.failed,
                "inconclusive": tally.inconclusive,
                "errors": tally.errors,
                "condition": _condition_text(metric),
                "reason": metric_reason(metric.name, metric, taken, phase, count),
                "recent": recent(taken),
            }
        verdict = run_phase(phases, dry)
        if ended is not None and verdict == AnalysisPhase.RUNNING:  # only dry-run metrics
            verdict = AnalysisPhase.CANCELLED if cancelled else AnalysisPhase.SUCCESSFUL
        message = _run_message(run, verdict, summaries, ended)
        now = self.clock()
        updated = replace(
            run,
            phase=verdict,
            message=message,
            finished_at=now if verdict.terminal else None,
            metrics={
                "blocking": run.metrics.get("blocking", True),
                "args": run.metrics.get("args", {}),
                "metrics": summaries,
            },
        )
        saved = await asyncio.to_thread(self.store.save_analysis_run, updated)
        self._runs.setdefault(run.rollout_id, {})[run.key] = saved
        return saved

    async def _measure_run(
        self, run: AnalysisRun, request: AnalysisRequest, spec: Spec, spec_dir: str
    ) -> None:
        """Measure every metric on its own schedule until the run has a verdict."""
        try:
            compiled = compile_templates(
                {t: spec.analysis[t] for t in run.templates if spec.analysis[t].judge is None}
            )
            measurements = list(
                await asyncio.to_thread(self.store.list_measurements, run.id, limit=ALL)
            )
            args = {**_template_args(spec, run.templates), **dict(request.args)}
            done = asyncio.Event()

            async def one_metric(template: str, metric: MetricSpec) -> None:
                pair = compiled.get((template, metric.name), (None, None))
                taken = [
                    m for m in measurements if (m.template, m.metric) == (template, metric.name)
                ]
                count = self._count(run, metric)
                no_data_since: list[datetime] = []
                if taken:
                    due = taken[-1].at + timedelta(seconds=metric.interval)
                else:
                    due = run.started_at + timedelta(seconds=metric.initial_delay)
                while not done.is_set() and run.id not in self._stopped:
                    if metric_phase(metric, Tally.of(taken), count).terminal:
                        return
                    delay = (due - self.clock()).total_seconds()
                    if delay > 0:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(done.wait(), delay)
                        if done.is_set():
                            return
                    context = MeasureContext(
                        app=run.app, env=run.env, revision=run.revision,
                        baseline=run.baseline, window=max(1.0, metric.interval),
                        started_at=run.started_at, args=args, spec_dir=spec_dir,
                        user=spec.run.user,
                        allowed_env=self.allowed_env,
                    )  # fmt: skip
                    measurement: Measurement | None
                    if spec.analysis[template].judge is not None:
                        # A background judge has no last judgement: it judges until the
                        # final switch, failing at once on a score at or below marginal_score.
                        last = count is not None and Tally.of(taken).taken + 1 >= count
                        measurement = await self._judge_once(run, spec, template, last)
                    else:
                        measurement = await self._measure_once(
                            run, template, metric, pair, context, no_data_since
                        )
                    if measurement is None:  # no data yet: try again shortly, record nothing
                        due = self.clock() + timedelta(seconds=min(1.0, metric.interval))
                        continue
                    async with self._lock:  # never while a pass decides or a run is ended
                        current = self._current(run)
                        if current.phase.terminal or done.is_set() or run.id in self._stopped:
                            done.set()  # ended while measuring: the measurement is dropped
                            return
                        if metric_phase(metric, Tally.of(taken), count).terminal:
                            return  # never more than the metric's count
                        saved = await asyncio.to_thread(self.store.add_measurement, measurement)
                        taken.append(saved)
                        measurements.append(saved)
                        concluded = await self._conclude(current, spec, measurements)
                    if concluded.phase.terminal:
                        done.set()
                        self.wake()
                        return
                    due = saved.at + timedelta(seconds=metric.interval)

            await asyncio.gather(*(one_metric(t, m) for t, m in self._metrics(run, spec)))
        except asyncio.CancelledError:
            raise
        except BaepoError as exc:
            log.warning("analysis run %s: %s", run.id, exc)
        except Exception:
            log.exception("analysis run %s failed", run.id)

    async def _judge_once(
        self, run: AnalysisRun, spec: Spec, template: str, last: bool
    ) -> Measurement:
        """One judgement of a judge template over everything since the run started."""
        from baepo.analysis.judging import judge_once

        section = spec.analysis[template]
        assert section.judge is not None
        seconds = (self.clock() - run.started_at).total_seconds()
        value: Any = None
        output = ""
        try:
            if self.series is None:
                raise MeasurementError("no router samples to judge from")
            steps = self.series.series(run.app, run.env, seconds, section.judge.step)
            phase, value, message, output = await asyncio.to_thread(
                judge_once, section, steps, run.revision, run.baseline, last=last
            )
        except MeasurementError as exc:
            phase, message = AnalysisPhase.ERROR, exc.message
        return Measurement(
            run_id=run.id, template=template, metric="judge", phase=phase, value=value,
            message=message, at=self.clock(), output=output[-4000:],
        )  # fmt: skip

    async def _measure_once(
        self,
        run: AnalysisRun,
        template: str,
        metric: MetricSpec,
        pair: ConditionPair,
        context: MeasureContext,
        no_data_since: list[datetime],
    ) -> Measurement | None:
        """One measurement judged; None while the source has had no data for less than
        ``NO_DATA_GRACE`` intervals (a canary that only just got traffic)."""
        provider = self.providers.get(metric.provider)
        value: Any = None
        output = ""
        try:
            if provider is None:
                known = ", ".join(sorted(self.providers))
                raise MeasurementError(f"unknown provider {metric.provider!r}; known: {known}")
            timeout = _timeout(metric)
            try:
                measured = await asyncio.wait_for(provider.measure(metric, context), timeout)
            except TimeoutError:
                raise MeasurementError(f"no answer within {timeout:g}s") from None
            value, output = measured.value, measured.output
            phase, message = assess(pair[0], pair[1], measured)
        except MeasurementError as exc:
            nothing = type(exc).__name__ == "NoData"
            if nothing:
                now = self.clock()
                no_data_since[:] = no_data_since or [now]
                waited = (now - no_data_since[0]).total_seconds()
                if waited < NO_DATA_GRACE * metric.interval:
                    return None
            phase = AnalysisPhase.INCONCLUSIVE if nothing else AnalysisPhase.ERROR
            message = exc.message
            if nothing:
                message += f" for {NO_DATA_GRACE} intervals"
        else:
            no_data_since.clear()
        return Measurement(
            run_id=run.id,
            template=template,
            metric=metric.name,
            phase=phase,
            value=_jsonable(value),
            message=message,
            at=self.clock(),
            output=output[-4000:],
        )


_ENDED = {
    RolloutPhase.ROLLED_BACK: "rolled back",
    RolloutPhase.ABORTED: "aborted",
    RolloutPhase.SUPERSEDED: "superseded by a newer deploy",
    RolloutPhase.FAILED: "failed",
}


def ended_by(rollout: Rollout) -> str:
    """Why a rollout's runs end with it, in plain words, e.g. ``the rollout was rolled back:
    rollback guard error_rate: error rate 26.9% ... is above 5%``."""
    if rollout.phase == RolloutPhase.HEALTHY:
        return "the rollout is healthy"
    what = _ENDED.get(rollout.phase, rollout.phase.value)
    why = rollout.cause.summary if rollout.cause is not None else rollout.message
    return f"the rollout was {what}" + (f": {why}" if why else "")


def _timeout(metric: MetricSpec) -> float:
    own = metric.web.timeout if metric.web else metric.job.timeout if metric.job else None
    return MEASURE_TIMEOUT if own is None else own + 5.0


def _template_args(spec: Spec, templates: Sequence[str]) -> dict[str, str]:
    args: dict[str, str] = {}
    for name in templates:
        args.update(spec.analysis[name].args)
    return args


def _condition_text(metric: MetricSpec) -> str:
    parts = []
    if metric.success_condition:
        parts.append(f"passes when {metric.success_condition}")
    if metric.failure_condition:
        parts.append(f"fails when {metric.failure_condition}")
    return "; ".join(parts)


def _jsonable(value: Any) -> Any:
    """A measurement value as JSON can hold it (mappings and lists recursively)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return str(value)


_CONSEQUENCE = {
    AnalysisPhase.FAILED: "rollback",
    AnalysisPhase.ERROR: "rollback",
    AnalysisPhase.INCONCLUSIVE: "paused for a person (baepo promote or baepo abort)",
}


def _run_message(
    run: AnalysisRun,
    verdict: AnalysisPhase,
    summaries: Mapping[str, Any],
    ended: str | None,
) -> str:
    noun = _KINDS_NOUN.get(run.kind, run.kind)
    if verdict == AnalysisPhase.RUNNING:
        return f"{noun} running: " + "; ".join(s["reason"] for s in summaries.values())
    deciding = [s for s in summaries.values() if s["phase"] == verdict.value and not s["dry_run"]]
    if verdict in _CONSEQUENCE and deciding and ended is None:
        consequence = _CONSEQUENCE[verdict]
        if run.kind == "post_promotion" and consequence == "rollback":
            consequence = "switching back"
        return f"{noun} {verdict.value}: {deciding[0]['reason']} → {consequence}"
    tail = f" ({ended})" if ended else ""
    return f"{noun} {verdict.value}{tail}: " + "; ".join(s["reason"] for s in summaries.values())
