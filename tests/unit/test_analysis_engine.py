"""The analysis engine against a store and a provider under the test's control: a run ended
while a measurement is being recorded, verdicts held back while a pass decides, background runs
that measure until the final switch, and runs ended by something else (cancelled)."""

from __future__ import annotations

import asyncio
import functools
import itertools
import threading
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from baepo.analysis.engine import AnalysisEngine
from baepo.analysis.measure import MeasureContext, Measured
from baepo.core.model import (
    AnalysisPhase,
    AnalysisRequest,
    AnalysisRun,
    Measurement,
    Rollout,
    RolloutPhase,
)
from baepo.spec.analysis import MetricSpec
from baepo.spec.models import Spec

T0 = datetime(2026, 1, 1, tzinfo=UTC)
KEY = "check/errors"


class FakeStore:
    """The analysis part of the store, in memory. With ``hold_adds``, recording a measurement
    waits for ``gate``, set by the test or by a listing of the measurements meanwhile."""

    def __init__(self) -> None:
        self.runs: dict[int, AnalysisRun] = {}
        self.measurements: dict[int, list[Measurement]] = {}
        self.hold_adds = False
        self.adding = threading.Event()
        self.gate = threading.Event()
        self.listed = threading.Event()
        self.in_flight = 0
        self._ids = itertools.count(1)
        self._mutex = threading.Lock()

    def create_analysis_run(self, run: AnalysisRun) -> AnalysisRun:
        saved = replace(run, id=next(self._ids))
        self.runs[saved.id] = saved
        return saved

    def save_analysis_run(self, run: AnalysisRun) -> AnalysisRun:
        self.runs[run.id] = run
        return run

    def list_analysis_runs(self, app: str, env: str, **_: Any) -> list[AnalysisRun]:
        return list(self.runs.values())

    def add_measurement(self, measurement: Measurement) -> Measurement:
        with self._mutex:
            self.in_flight += 1
        try:
            if self.hold_adds:
                self.adding.set()
                self.gate.wait(10)
            with self._mutex:
                self.measurements.setdefault(measurement.run_id, []).append(measurement)
            return measurement
        finally:
            with self._mutex:
                self.in_flight -= 1

    def list_measurements(self, run_id: int, **_: Any) -> list[Measurement]:
        with self._mutex:
            found = list(self.measurements.get(run_id, []))
        if self.adding.is_set():  # listed while a measurement is being recorded
            self.listed.set()
            self.gate.set()
        return found

    def only_run(self) -> AnalysisRun:
        [run] = self.runs.values()
        return run

    def taken(self, run: AnalysisRun) -> int:
        return len(self.measurements.get(run.id, []))


class Provider:
    """Answers ``values`` in turn (the last one again and again), for each run on its own;
    after ``pause_after`` answers to a run it waits for ``resume``."""

    kind = "builtin"

    def __init__(self, *values: float, pause_after: int | None = None) -> None:
        self.values = list(values)
        self.calls = 0
        self.per_run: Counter[datetime] = Counter()  # by the run's start
        self.pause_after = pause_after
        self.resume = asyncio.Event()

    async def measure(self, metric: MetricSpec, context: MeasureContext) -> Measured:
        mine = self.per_run[context.started_at]
        if self.pause_after is not None and mine >= self.pause_after:
            await self.resume.wait()
        value = self.values[min(mine, len(self.values) - 1)]
        self.calls += 1
        self.per_run[context.started_at] += 1
        return Measured(value=value)


def jumping_clock() -> Callable[[], datetime]:
    """A clock 10 s further on at every reading: every measurement is due at once."""
    ticks = itertools.count()
    return lambda: T0 + timedelta(seconds=10 * next(ticks))


def spec_with(**metric: Any) -> Spec:
    errors = {"name": "errors", "interval": "1s", "failure_condition": "result > 0.5", **metric}
    return Spec.model_validate(
        {"app": "a", "run": {"command": ["x"]}, "analysis": {"check": {"metrics": [errors]}}}
    )


ROLLOUT = Rollout(
    id=7, app="a", env="default", revision=2, stable_revision=1, strategy="canary",
    phase=RolloutPhase.PROGRESSING, message="", started_at=T0, updated_at=T0,
)  # fmt: skip


def request(key: str = "step-1", *, blocking: bool = True) -> AnalysisRequest:
    kind = "step" if blocking else "background"
    return AnalysisRequest(
        key=key, kind=kind, templates=("check",), revision=2, baseline=1, blocking=blocking
    )


async def until(predicate: Callable[[], bool], what: str) -> None:
    """Wait for ``predicate`` (the engine's tasks run meanwhile), at most 10 s."""
    for _ in range(1000):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


async def sync(engine: AnalysisEngine, spec: Spec, *requests: AnalysisRequest) -> None:
    async with engine.deciding():
        await engine.sync(ROLLOUT, spec, ".", requests)


def in_loop(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test in a fresh event loop."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


@pytest.fixture
def store() -> Iterator[FakeStore]:
    fake = FakeStore()
    yield fake
    fake.gate.set()


def engine_for(store: FakeStore, provider: Provider) -> AnalysisEngine:
    return AnalysisEngine(store, {"builtin": provider}, clock=jumping_clock())  # type: ignore[arg-type]


@in_loop
async def test_a_run_ended_while_a_measurement_is_recorded_counts_it(store: FakeStore) -> None:
    """The race behind a verdict that disagreed with its measurements: the run was ended (and
    judged) while its task was still writing a measurement, which landed afterwards."""
    store.hold_adds = True
    engine = engine_for(store, Provider(0.0))
    spec = spec_with(count=3)
    await sync(engine, spec, request())
    await asyncio.to_thread(store.adding.wait, 10)  # a measurement is being recorded
    ending = asyncio.create_task(sync(engine, spec))  # the step is no longer wanted
    # Let the ending go as far as it can before the write completes: it used to list the
    # measurements at once (which releases the write, too late to be counted); now it waits
    # for the write, and nothing is listed until the gate opens.
    await asyncio.to_thread(store.listed.wait, 1.0)
    store.gate.set()
    await asyncio.wait_for(ending, 10)
    await until(lambda: store.in_flight == 0, "the write to complete")
    run = store.only_run()
    summary = run.metrics["metrics"][KEY]
    assert run.phase == AnalysisPhase.CANCELLED, run.message
    assert summary["taken"] == store.taken(run) == 1, (summary, store.measurements)


@in_loop
async def test_no_verdict_lands_while_a_pass_decides(store: FakeStore) -> None:
    provider = Provider(0.9)  # fails at once (failure_limit 0)
    engine = engine_for(store, provider)
    spec = spec_with(count=3)
    async with engine.deciding():
        await engine.sync(ROLLOUT, spec, ".", [request()])
        await until(lambda: provider.calls >= 1, "a measurement to be taken")
        for _ in range(50):
            await asyncio.sleep(0)
        # Taken, but neither recorded nor judged while the pass holds its view.
        assert store.taken(store.only_run()) == 0
        assert (await engine.runs(ROLLOUT))["step-1"].phase == AnalysisPhase.RUNNING
    await until(lambda: store.only_run().phase.terminal, "the verdict")
    run = store.only_run()
    assert run.phase == AnalysisPhase.FAILED
    assert store.taken(run) == 1
    assert (await engine.runs(ROLLOUT))["step-1"] == run


@in_loop
async def test_a_blocking_run_never_holds_more_measurements_than_its_count(
    store: FakeStore,
) -> None:
    provider = Provider(0.0)
    engine = engine_for(store, provider)
    await sync(engine, spec_with(count=3), request())
    await until(lambda: store.only_run().phase.terminal, "the verdict")
    await sync(engine, spec_with(count=3), request())  # asked again: nothing more is measured
    for _ in range(50):
        await asyncio.sleep(0)
    run = store.only_run()
    assert run.phase == AnalysisPhase.SUCCESSFUL
    assert store.taken(run) == 3
    assert run.metrics["metrics"][KEY]["taken"] == 3


@in_loop
async def test_a_background_run_measures_past_its_count_until_the_final_switch(
    store: FakeStore,
) -> None:
    provider = Provider(0.0)
    engine = engine_for(store, provider)
    spec = spec_with(count=2)
    background = request("background", blocking=False)
    await sync(engine, spec, background)
    await until(lambda: store.taken(store.only_run()) >= 5, "five measurements")
    assert store.only_run().phase == AnalysisPhase.RUNNING
    await sync(engine, spec)  # the final switch: no longer wanted
    run = store.only_run()
    taken = store.taken(run)
    assert run.phase == AnalysisPhase.SUCCESSFUL, run.message
    assert "ended at the final switch" in run.message
    assert run.metrics["metrics"][KEY]["taken"] == taken
    for _ in range(50):
        await asyncio.sleep(0)
    assert store.taken(run) == taken  # nothing after the end


@in_loop
async def test_a_background_run_fails_on_a_fault_after_its_count(store: FakeStore) -> None:
    provider = Provider(0.0, 0.0, 0.0, 0.0, 0.9)
    engine = engine_for(store, provider)
    await sync(engine, spec_with(count=2), request("background", blocking=False))
    await until(lambda: store.only_run().phase.terminal, "the verdict")
    run = store.only_run()
    assert run.phase == AnalysisPhase.FAILED, run.message
    assert store.taken(run) == 5


@pytest.mark.parametrize("first", [0.9, 0.0])
@in_loop
async def test_a_run_ended_by_a_guard_rollback_is_cancelled_with_the_reason(
    store: FakeStore, first: float
) -> None:
    provider = Provider(first, pause_after=1)
    engine = engine_for(store, provider)
    spec = spec_with(count=3, failure_limit=1)
    await sync(engine, spec, request(), request("background", blocking=False))
    await until(lambda: sum(map(store.taken, store.runs.values())) == 2, "one measurement each")
    rolled_back = replace(
        ROLLOUT,
        phase=RolloutPhase.ROLLED_BACK,
        message="rollback guard error_rate: error rate 26.9% is above 5% → rolling back",
    )
    async with engine.deciding():
        await engine.finish(rolled_back, spec)
    for run in store.runs.values():
        assert run.phase == AnalysisPhase.CANCELLED, run.message
        assert "cancelled (the rollout was rolled back: rollback guard error_rate" in run.message
        assert "paused for a person" not in run.message
        assert run.metrics["metrics"][KEY]["phase"] == "cancelled"
        assert run.finished_at is not None


@in_loop
async def test_a_rollout_that_ends_healthy_judges_its_background_run(store: FakeStore) -> None:
    provider = Provider(0.9, pause_after=1)  # one failure, within failure_limit 1, no pass
    engine = engine_for(store, provider)
    spec = spec_with(failure_limit=1)
    await sync(engine, spec, request("background", blocking=False))
    await until(lambda: store.taken(store.only_run()) == 1, "one measurement")
    async with engine.deciding():
        await engine.finish(replace(ROLLOUT, phase=RolloutPhase.HEALTHY), spec)
    run = store.only_run()
    # Not "successful": nothing passed.
    assert run.phase == AnalysisPhase.INCONCLUSIVE, run.message
    assert "no measurement passed" in run.message
    assert "paused for a person" not in run.message


@in_loop
async def test_sync_outside_deciding_is_refused(store: FakeStore) -> None:
    engine = engine_for(store, Provider(0.0))
    with pytest.raises(RuntimeError, match="deciding"):
        await engine.sync(ROLLOUT, spec_with(), ".", [request()])
