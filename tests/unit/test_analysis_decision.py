"""A verdict that arrives while a controller pass is deciding: the reconciler with a real
store, a fake fleet and router, and a metric provider the test answers by hand.

The pass that switches all traffic to the canary read the background run as running. A
failed measurement taken meanwhile used to land in the middle of that pass: the run was
recorded ``failed … → rollback`` while the same pass went on to promote, and the rollout
ended healthy under a verdict that said roll back (the race seen in one of 35 canary runs).
Now the measurement waits for the pass, which ends the background run at the switch first;
the run is judged on what it had and the late measurement is dropped."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from test_host_batch_failures import FakeFleet, FakeRouter

from baepo.analysis.measure import MeasureContext, Measured
from baepo.controller.reconciler import Reconciler
from baepo.controller.releases import DeployRequest, Releases
from baepo.controller.steering import Steering
from baepo.core.model import AnalysisPhase, RolloutPhase
from baepo.core.ports import Backend, HeaderRoute, Sticky, Store
from baepo.spec.analysis import MetricSpec
from baepo.spec.models import Spec
from baepo.store import open_store, sqlite_url


class HandProvider:
    """Answers 0.0 (a pass) the first time; later answers wait for ``answer`` to be set and
    then give 0.9 (a failure)."""

    kind = "builtin"

    def __init__(self) -> None:
        self.calls = 0
        self.waiting = asyncio.Event()
        self.answer = asyncio.Event()

    async def measure(self, metric: MetricSpec, context: MeasureContext) -> Measured:
        self.calls += 1
        if self.calls == 1:
            return Measured(value=0.0)
        self.waiting.set()
        await self.answer.wait()
        return Measured(value=0.9)


class SwitchHook(FakeRouter):
    """Calls ``on_switch`` when a table gives all traffic to revision 2."""

    def __init__(self) -> None:
        super().__init__()
        self.on_switch: object = None

    async def set_backends(
        self,
        app: str,
        env: str,
        backends: Sequence[Backend],
        *,
        sticky: Sticky | None = None,
        header_routes: Sequence[HeaderRoute] = (),
        listener: str = "main",
    ) -> None:
        await super().set_backends(app, env, backends, listener=listener)
        weights = {b.revision: b.weight for b in backends if b.weight}
        if listener == "main" and weights.keys() == {2} and callable(self.on_switch):
            hook, self.on_switch = self.on_switch, None
            await hook()


def canary_spec() -> Spec:
    metric = {"name": "errors", "interval": "1s", "failure_condition": "result > 0.5"}
    return Spec.model_validate(
        {
            "app": "a",
            "run": {"command": ["x", "{port}"]},
            "replicas": 1,
            "strategy": {
                "canary": {
                    "steps": [{"set_weight": 50}, {"pause": {}}],
                    "background_analysis": {"templates": ["check"]},
                }
            },
            "analysis": {"check": {"metrics": [metric]}},
        }
    )


async def passes(reconciler: Reconciler, store: Store, until: object, limit: int = 60) -> None:
    for _ in range(limit):
        app = store.get_app("a", "default")
        assert app is not None
        await reconciler.reconcile(app)
        await reconciler.wait_draining()
        if callable(until) and until():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the rollout never got there")


def test_a_verdict_taken_while_the_switch_is_decided_does_not_undo_it(tmp_path: Path) -> None:
    store = open_store(sqlite_url(tmp_path / "state.db"))
    router = SwitchHook()
    reconciler = Reconciler(store, FakeFleet(), router)
    provider = HandProvider()
    reconciler.analysis.providers = {"builtin": provider}
    releases = Releases(store, wake=lambda: None)

    def deploy(version: str) -> None:
        request = DeployRequest(canary_spec(), str(tmp_path), "default", "me", version=version)
        assert releases.deploy(request).changed

    def rollout_phase() -> RolloutPhase:
        last = store.latest_rollout("a", "default")
        assert last is not None
        return last.phase

    def background() -> list[tuple[AnalysisPhase, int]]:
        runs = store.list_analysis_runs("a", "default")
        return [(r.phase, len(store.list_measurements(r.id))) for r in runs if r.rollout_id > 1]

    async def scenario() -> None:
        deploy("1")
        await passes(reconciler, store, lambda: rollout_phase() == RolloutPhase.HEALTHY)
        deploy("2")
        # Paused at 50 %, the background analysis has one passing measurement and is taking
        # the next one.
        await passes(reconciler, store, lambda: rollout_phase() == RolloutPhase.PAUSED)
        await asyncio.wait_for(provider.waiting.wait(), 10)
        assert background() == [(AnalysisPhase.RUNNING, 1)]

        async def failing_measurement_arrives() -> None:
            provider.answer.set()
            for _ in range(100):  # until it is recorded, if it can be in the middle of a pass
                if background()[0][1] == 2:
                    return
                await asyncio.sleep(0.005)

        router.on_switch = failing_measurement_arrives
        Steering(store, wake=lambda: None).promote("a", "default", "me")
        await passes(reconciler, store, lambda: rollout_phase().terminal)
        # The switch stands: the background analysis ended there, on what it had.
        assert rollout_phase() == RolloutPhase.HEALTHY
        [(phase, taken)] = background()
        assert (phase, taken) == (AnalysisPhase.SUCCESSFUL, 1)
        await reconciler.analysis.close()

    asyncio.run(scenario())
