"""One reconcile pass for one app+environment: observe, plan, persist, act.

The order is what makes a pass safe to cut short and run again (invariant 1): the phase and
status a plan asks for are persisted first, then the routing table is pushed (so nothing is
routed to an instance about to stop), then instances are drained and stopped, then new ones
started. Everything is derived again from the platform's observation on the next pass. A
rollback is the one exception: its switch to stable is pushed before it is persisted, since
sending users to stable is always safe and nobody should read "rolled back" while the new
revision still serves.
Callers: ``controller.loop``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from baepo.analysis.engine import AnalysisEngine
from baepo.analysis.guards import Trip, check_guards, windows_for
from baepo.controller import clock as clocks
from baepo.controller.desired import instance_spec, preview_config, router_config, spec_of
from baepo.controller.gates import Gates
from baepo.controller.sampling import Sampler
from baepo.controller.traffic import MAIN, PREVIEW, Table, Traffic
from baepo.core import causes, evidence
from baepo.core.model import (
    AnalysisPhase,
    App,
    AppState,
    Cause,
    CauseKind,
    Event,
    Instance,
    InstancePhase,
    Revision,
    Rollout,
    RolloutPhase,
)
from baepo.core.ports import Backend, InstanceSpec, Platform, Router, Store
from baepo.errors import BaepoError, ExternalError, NotFoundError
from baepo.providers import ProviderDeps, make_providers
from baepo.secrets import references, sealed
from baepo.secrets.keys import Keyring, SecretUnreadable
from baepo.secrets.resolve import secret_env
from baepo.shell import listeners
from baepo.spec.models import Spec
from baepo.strategies import startup
from baepo.strategies.plan import Plan, only_revision_traffic
from baepo.strategies.rolling import converge
from baepo.strategies.rollout import plan_rollout

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

# Phases a rollout may only end in with a cause (``Rollout.cause``).
CAUSED = frozenset({RolloutPhase.FAILED, RolloutPhase.ROLLED_BACK, RolloutPhase.ABORTED})


STALL_NOTE = "retried on every pass"  # the last evidence line of a stall's cause


def utcnow() -> datetime:
    return datetime.now(UTC)


def _stall(cause: Cause | None) -> bool:
    """Whether ``cause`` is the one ``Reconciler._stalled`` records (cleared on recovery)."""
    return (
        cause is not None
        and cause.kind == CauseKind.INFRASTRUCTURE
        and cause.evidence[-1:] == (STALL_NOTE,)
    )


def _cause(plan: Plan, phase: RolloutPhase, rollout: Rollout) -> Cause | None:
    """The rollout's cause after ``plan``: the plan's; none once healthy; else the one
    recorded, except what a stall waited for (``strategies.startup.stall``), dropped once a
    plan no longer states it, so it never outlives the stall or explains an end it did not
    cause."""
    if plan.cause is not None or phase == RolloutPhase.HEALTHY:
        return plan.cause
    if startup.is_stall(rollout.cause):
        return None
    return rollout.cause


class DroppedEvents:
    """Events the store could not record, counted (``baepo_events_dropped_total``, the
    ``/api/v1/server`` answer and ``baepo server status``) and logged, so none is lost unseen."""

    def __init__(self) -> None:
        self.count = 0
        self.last_cause: str | None = None
        self.per_app: dict[tuple[str, str], int] = {}

    def add(self, what: str, cause: BaseException, app: tuple[str, str] | None = None) -> None:
        self.count += 1
        self.last_cause = str(cause)
        if app is not None:
            self.per_app[app] = self.per_app.get(app, 0) + 1
        log.warning("event not recorded (%d so far): %s; cause: %s", self.count, what, cause)

    def of(self, app: str, env: str) -> int:
        """How many events of ``app`` in ``env`` could not be recorded (``baepo status``)."""
        return self.per_app.get((app, env), 0)


class Reconciler:
    """Drives apps toward their desired state through the platform and router ports."""

    def __init__(
        self,
        store: Store,
        platform: Platform,
        router: Router,
        *,
        clock: Clock = utcnow,
        timer: Clock | None = None,
        wake: Callable[[], None] = lambda: None,
        keyring: Keyring | None = None,
    ) -> None:
        self.store = store
        # ``clock`` stamps records (events, updated_at); ``timer`` times pauses, automatic
        # promotion and scale-down delays, unmoved by a wall-clock jump (``controller.clock``).
        # A test that swaps ``clock`` alone swaps both.
        self.timer: Clock = timer or (clocks.steady if clock is utcnow else clock)
        self.dropped = DroppedEvents()  # the controller shares one across its reconcilers
        self.keyring = keyring  # decrypts the stored secrets given to new instances
        self.secret_scope = references.SecretScope()  # what specs may reach on this server
        self.wake = wake  # asks for another pass at once (e.g. when a stop finished)
        self.platform = platform
        self.router = router
        self.clock = clock
        self._draining: dict[str, asyncio.Task[None]] = {}
        self.traffic = Traffic(router)
        self.sampler = Sampler(router)
        self.analysis = AnalysisEngine(
            store,
            make_providers(ProviderDeps(rates=self.sampler)),
            clock=clock,
            wake=wake,
            series=self.sampler,
        )
        self._readiness: dict[str, bool] = {}
        # Whether the guards' statistics are imported (the controller loads them in a thread
        # at start); until then only failed health checks are judged. Alone, it imports them.
        self.statistics_loaded: Callable[[], bool] = lambda: True
        self._seen_apps: set[tuple[str, str]] = set()
        self._revisions: dict[tuple[str, str, int], Revision] = {}
        self._fresh_sample = False
        self._ever_ready: dict[tuple[str, str], set[str]] = {}  # instances seen ready
        self._watch_tripped: set[int] = set()  # rollouts undone after promotion
        self._swept_runs: set[tuple[str, str]] = set()  # apps whose stale runs were ended
        # Hosts a placed start failed on (host batches), by app, env and rollout id: the next
        # pass records them in that rollout's status, where the strategy skips them. Keyed by
        # rollout, not revision: ``baepo retry`` rolls the same revision out again, to every
        # host.
        self._failed_hosts: dict[tuple[str, str, int], set[str]] = {}
        self._host_errors: dict[tuple[str, str, int], dict[str, str]] = {}  # why, per host
        self.on_watch_trip: Callable[[str, str, str], object] | None = None
        self.gates = Gates(store, clock, wake, keyring=keyring)

    # -- observation -------------------------------------------------------------------

    async def observe(self, app: str, env: str) -> list[Instance]:
        """The platform's instances, with those this controller is draining marked STOPPING."""
        instances = await self.platform.list_instances(app, env)
        return [
            replace(i, phase=InstancePhase.STOPPING, ready=False) if i.id in self._draining else i
            for i in instances
        ]

    async def revision(self, app: str, env: str, number: int) -> Revision:
        key = (app, env, number)
        if key not in self._revisions:
            self._revisions[key] = await asyncio.to_thread(
                self.store.get_revision, app, env, number
            )
        return self._revisions[key]

    def table(self, app: str, env: str) -> tuple[Backend, ...]:
        """The main listener's table last pushed for app+env (empty before the first push)."""
        return self.traffic.table(app, env).backends

    # -- the pass ----------------------------------------------------------------------

    async def reconcile(self, app: App) -> bool:
        """One pass for ``app``. Returns True while work is under way (poll again soon)."""
        instances = await self.observe(app.app, app.env)
        await self._note_readiness(app, instances)
        if app.state == AppState.DOWN:
            await self._retire_runs(app, None)
            return await self._down(app, instances)
        rollout = await asyncio.to_thread(self.store.active_rollout, app.app, app.env)
        await self._retire_runs(app, rollout)
        if rollout is not None and rollout.phase == RolloutPhase.AWAITING_APPROVAL:
            rollout = None  # nothing moves until an approver says so
        target = rollout.revision if rollout else app.stable_revision
        if target is None:
            return False
        revision = await self.revision(app.app, app.env, target)
        if rollout is None:
            await self.traffic.ensure(router_config(revision))
            self._fresh_sample = await self.sampler.sample(app.app, app.env)
            return await self._hold(app, revision, instances)
        try:
            if not await self._router_ready(app, rollout, revision):
                return True  # ended: its router's port is taken
            self._fresh_sample = await self.sampler.sample(app.app, app.env)
            busy = await self._advance(app, rollout, revision, instances)
        except ExternalError as exc:
            await self._stalled(app, rollout, exc)
            raise
        await self._unstalled(rollout)
        return busy

    async def _advance(
        self, app: App, rollout: Rollout, revision: Revision, instances: list[Instance]
    ) -> bool:
        if rollout.phase == RolloutPhase.PENDING and not self.gates.passed_before(
            rollout, revision
        ):
            # The gates run first: nothing of the new revision starts, no traffic moves.
            if rollout.stable_revision is None:
                return True
            held = await self.revision(app.app, app.env, rollout.stable_revision)
            await self._hold(app, held, instances)
            return True
        spec = spec_of(revision)
        # No analysis verdict lands while this pass reads the runs, decides, routes, records
        # the decision and syncs the runs: a failed verdict recorded a moment after the read
        # would otherwise be overtaken by a step completed (or a switch made) on the older view.
        async with self.analysis.deciding():
            runs = await self.analysis.runs(rollout)
            counters = self.sampler.latest(app.app, app.env)
            plan, status = plan_rollout(
                self._with_failed_hosts(app, rollout),
                spec,
                instances,
                self.timer(),
                runs,
                counters,
            )
            if plan.phase is None or not plan.phase.terminal:
                plan = self._guard(app, rollout, spec, plan, instances)
            if plan.phase == RolloutPhase.ROLLED_BACK and plan.traffic is None:
                stable = rollout.stable_revision
                back = only_revision_traffic(instances, stable) if stable is not None else ()
                if back:  # switch back in this very pass; the next one converges the rest
                    plan = replace(plan, traffic=back)
            # Users first: the router routes the plan (main and preview listener) before the
            # rollout's new state is recorded, so whoever sees a step, a paused preview,
            # "healthy" or "rolled back" also sees the router serve it. A crash in between
            # only repeats the decision on the next pass.
            await self._route(app, revision, plan)
            changed = (
                plan.phase is not None
                or status != rollout.status
                or (plan.message and plan.message != rollout.message)
            )
            if changed:
                rollout = await self._transition(app, rollout, plan, status)
                if rollout.phase.terminal:
                    self.gates.ended(rollout, revision)
            if rollout.phase.terminal:
                await self.analysis.finish(rollout, spec)
            else:
                await self.analysis.sync(rollout, spec, revision.spec_dir, plan.analyses)
        for note in plan.notes:
            await self.event(app, "rollout.step", note, rollout=rollout)
        try:
            await self._act(app, revision, plan, rollout)
        except SecretUnreadable as exc:
            cause = causes.infrastructure(
                f"the secrets of revision {revision.number} cannot be read",
                str(exc),
                exc.hint or "",
            )
            await self._fail(app, rollout, revision, instances, f"{exc} ({exc.hint})", cause)
        return True

    async def _retire_runs(self, app: App, active: Rollout | None) -> None:
        """End the analysis runs of app+env's rollouts that ended outside a pass (an abort,
        an undo, a newer deploy, a failed gate, ``baepo down``), cancelled with the reason;
        on the first pass for the app also those a previous server left running."""
        keep = active.id if active is not None else None
        ended = set(self.analysis.rollouts_of(app.app, app.env))
        if (app.app, app.env) not in self._swept_runs:
            self._swept_runs.add((app.app, app.env))
            stored = await asyncio.to_thread(self.store.list_analysis_runs, app.app, app.env)
            ended |= {r.rollout_id for r in stored if r.phase == AnalysisPhase.RUNNING}
        for rollout_id in sorted(ended - {keep}):
            try:
                rollout = await asyncio.to_thread(self.store.get_rollout, rollout_id)
                if not rollout.phase.terminal:
                    continue
                revision = await self.revision(app.app, app.env, rollout.revision)
            except NotFoundError:
                continue
            async with self.analysis.deciding():
                await self.analysis.finish(rollout, spec_of(revision))

    async def _fail(
        self,
        app: App,
        rollout: Rollout,
        revision: Revision,
        instances: list[Instance],
        why: str,
        cause: Cause,
    ) -> None:
        """End ``rollout`` failed at once, for a cause no retry can cure; all traffic goes
        back to stable first (invariant 3)."""
        stable = rollout.stable_revision
        back = only_revision_traffic(instances, stable) if stable is not None else None
        message = f"revision {revision.number} cannot start: {why}"
        log.warning("%s/%s: %s", app.app, app.env, message)
        plan = Plan(traffic=back or None, phase=RolloutPhase.FAILED, message=message, cause=cause)
        await self._route(app, revision, plan)
        ended = await self._transition(app, rollout, plan, rollout.status)
        self.gates.ended(ended, revision)
        async with self.analysis.deciding():
            await self.analysis.finish(ended, spec_of(revision))

    async def _stalled(self, app: App, rollout: Rollout, exc: ExternalError) -> None:
        """Record why the rollout cannot go on (the router or the platform refused): its cause
        while it stalls, shown by ``baepo status``. Retried on every pass; the progress deadline
        still ends a rollout that never recovers."""
        cause = causes.infrastructure(
            f"the router or the platform failed: {exc}",
            *(line for line in (str(exc), exc.hint or "") if line),
            STALL_NOTE,
        )
        if rollout.cause == cause:
            return
        try:
            fresh = await asyncio.to_thread(self.store.get_rollout, rollout.id)
            if fresh.phase.terminal or fresh.cause == cause:
                return
            if fresh.cause is not None and fresh.cause.kind != CauseKind.INFRASTRUCTURE:
                return  # a more precise cause (a port conflict, a probe's answer) stays
            await asyncio.to_thread(self.store.save_rollout, replace(fresh, cause=cause))
        except BaepoError as store_error:  # the pass's own error is what the log must show
            log.info("cannot record the stall of rollout %d: %s", rollout.id, store_error)

    async def _unstalled(self, rollout: Rollout) -> None:
        """Clear the cause ``_stalled`` recorded once a pass goes through again (also one
        recorded before a restart of the controller)."""
        if not _stall(rollout.cause):
            return
        try:
            fresh = await asyncio.to_thread(self.store.get_rollout, rollout.id)
            if not fresh.phase.terminal and _stall(fresh.cause):
                await asyncio.to_thread(self.store.save_rollout, replace(fresh, cause=None))
        except BaepoError as exc:
            log.info("cannot clear the stall of rollout %d: %s", rollout.id, exc)

    async def _router_ready(self, app: App, rollout: Rollout, revision: Revision) -> bool:
        """Keep the rollout's router running; False when it cannot listen because its port is
        taken, after ending the rollout as a port conflict."""
        try:
            await self.traffic.ensure(router_config(revision))
        except ExternalError as exc:
            if not evidence.port_conflict([str(exc)]):
                raise
            await self._router_port_taken(app, rollout, revision, exc)
            return False
        return True

    async def _router_port_taken(
        self, app: App, rollout: Rollout, revision: Revision, exc: ExternalError
    ) -> None:
        """End ``rollout`` at once when its router cannot listen because its port is taken:
        no wait cures that, and the rollout would otherwise sit in ``pending``."""
        listen = router_config(revision).listen
        port = listen.rpartition(":")[2]
        holder = "its port is taken"
        if port.isdigit():  # /proc is read off the event loop
            holder = await asyncio.to_thread(listeners.describe, int(port))
        cause = Cause(
            CauseKind.PORT_CONFLICT,
            f"the router cannot listen on {listen}: {holder}",
            (str(exc), *([f"hint: {exc.hint}"] if exc.hint else [])),
        )
        stable = rollout.stable_revision
        phase = RolloutPhase.FAILED if stable is None else RolloutPhase.ROLLED_BACK
        back = "" if stable is None else f"; rolling back to revision {stable}"
        log.warning("%s/%s: %s", app.app, app.env, cause.summary)
        plan = Plan(phase=phase, message=f"{cause.summary}{back}", cause=cause)
        ended = await self._transition(app, rollout, plan, rollout.status)
        self.gates.ended(ended, revision)
        await self.analysis.finish(ended, spec_of(revision))

    def _with_failed_hosts(self, app: App, rollout: Rollout) -> Rollout:
        """``rollout`` with the hosts its starts failed on in ``status["failed_hosts"]``."""
        key = (app.app, app.env, rollout.id)
        failed = self._failed_hosts.get(key, set())
        known = set(rollout.status.get("failed_hosts", []))
        if failed <= known:
            return rollout
        errors = {**rollout.status.get("host_errors", {}), **self._host_errors.get(key, {})}
        status = {**rollout.status, "failed_hosts": sorted(failed | known), "host_errors": errors}
        return replace(rollout, status=status)

    def _guard(
        self, app: App, rollout: Rollout, spec: Spec, plan: Plan, instances: Sequence[Instance]
    ) -> Plan:
        """The plan, or a rollback when a ``rollback:`` guard fires: failed health checks of
        an instance of the new revision that was ready, or the router's numbers on a fresh
        sample."""
        stable = rollout.stable_revision
        if stable is None or not spec.rollback.enabled:
            return plan
        trip = self._tripped(app, spec, rollout.revision, stable, instances)
        if trip is None:
            return plan
        message = f"rollback guard {trip.guard}: {trip.reason} → rolling back to revision {stable}"
        cause = Cause(
            CauseKind.ROLLBACK_GUARD, f"rollback guard {trip.guard}: {trip.reason}", trip.evidence
        )
        return Plan(phase=RolloutPhase.ROLLED_BACK, message=message, cause=cause)

    def _tripped(
        self,
        app: App,
        spec: Spec,
        revision: int,
        baseline: int | None,
        instances: Sequence[Instance],
        history: float | None = None,
    ) -> Trip | None:
        """The first guard that fires for ``revision``: failed health checks of an instance
        that was ready, then the router's numbers (on a fresh sample only). ``history``
        seconds, when longer than the guard's window, is one more window: the baseline's
        figures when it no longer serves (after a promotion)."""
        threshold = spec.rollback.failed_health_checks
        for instance in instances:
            if (
                threshold is not None
                and instance.revision == revision
                and instance.id in self._ever_ready.get((app.app, app.env), set())
                and not instance.ready
                and instance.probe_failures >= threshold
            ):
                return Trip(
                    "failed_health_checks",
                    f"{instance.id} failed {instance.probe_failures} health checks in a row "
                    f"({instance.message})",
                )
        if not self._fresh_sample or not self.statistics_loaded():
            return None
        lengths = windows_for(spec.rollback)
        if history is not None and history > lengths[-1]:
            lengths = (*lengths, history)
        by_window = {seconds: self.sampler.rates(app.app, app.env, seconds) for seconds in lengths}
        weights = {b.revision: b.weight for b in self.table(app.app, app.env)}
        return check_guards(spec.rollback, revision, baseline, by_window, weights)

    async def _watch(
        self, app: App, spec: Spec, last: Rollout | None, instances: Sequence[Instance]
    ) -> None:
        """After a promotion, keep the guards on the promoted revision for ``rollback.watch``;
        a trip undoes the release (``on_watch_trip``) with the reason recorded."""
        if (
            last is None
            or last.phase != RolloutPhase.HEALTHY
            or last.stable_revision is None
            or last.finished_at is None
            or not spec.rollback.enabled
            or self.on_watch_trip is None
            or last.id in self._watch_tripped
        ):
            return
        since = (self.clock() - last.finished_at).total_seconds()
        if since > spec.rollback.watch:
            return
        # The revision it replaced no longer serves: its last ``window`` of serving is the
        # baseline, so errors both share (a path failing on every version) undo nothing.
        history = since + spec.rollback.window
        trip = self._tripped(app, spec, last.revision, last.stable_revision, instances, history)
        if trip is None:
            return
        self._watch_tripped.add(last.id)
        reason = (
            f"rollback guard {trip.guard} after promotion: {trip.reason} → undoing revision "
            f"{last.revision}"
        )
        await self.event(app, "rollback.guard", reason, rollout=last)
        try:
            await asyncio.to_thread(self.on_watch_trip, app.app, app.env, reason)
        except BaepoError as exc:
            log.warning("undo after a tripped guard failed: %s", exc)

    async def _transition(
        self, app: App, rollout: Rollout, plan: Plan, status: dict[str, Any]
    ) -> Rollout:
        now = self.clock()
        phase = plan.phase or rollout.phase
        if phase == RolloutPhase.HEALTHY:
            # Stable moves first: a crash between the two writes leaves a rollout that is
            # found complete again on the next pass, never an app rolled back by mistake.
            fresh = await asyncio.to_thread(self.store.get_app, app.app, app.env)
            assert fresh is not None
            await asyncio.to_thread(
                self.store.save_app,
                replace(fresh, stable_revision=rollout.revision, updated_at=now),
            )
        updated = replace(
            rollout,
            phase=phase,
            status=status,
            message=plan.message or rollout.message,
            updated_at=now,
            finished_at=now if phase.terminal else None,
            cause=_cause(plan, phase, rollout),
        )
        if phase in CAUSED and updated.cause is None:
            log.warning(
                "%s/%s: rollout %d ends %s without a recorded cause: %s",
                app.app, app.env, rollout.id, phase.value, updated.message,
            )  # fmt: skip
        saved = await asyncio.to_thread(self.store.save_rollout, updated)
        if plan.phase is not None and plan.phase != rollout.phase:
            await self.event(
                app,
                f"rollout.{phase.value}",
                plan.message or f"rollout {rollout.id} is {phase.value}",
                rollout=saved,
            )
        return saved

    async def _hold(self, app: App, revision: Revision, instances: list[Instance]) -> bool:
        """No rollout: keep the stable revision at its replicas (self-healing, rollback).

        Instances the last rollout asked to keep warm (an aborted canary for
        ``abort_scale_down_delay``, the old blue-green side for ``scale_down_delay``) are left
        running, unrouted, until their time is up.
        """
        spec = spec_of(revision)
        last = await asyncio.to_thread(self.store.latest_rollout, app.app, app.env)
        fresh = await asyncio.to_thread(self.store.get_app, app.app, app.env)
        if fresh is not None and fresh.stable_revision != revision.number:
            # A fast undo moved stable (then the rollout's warm side) since this pass began:
            # the old stable with the new ``keep`` would stop the side that now serves.
            return True
        if revision.origin == "deploy":  # an undo is never undone on its own
            await self._watch(app, spec, last, instances)
        keep = (last.status.get("keep") if last else None) or {}
        warm = keep and keep.get("revision") != revision.number
        if warm and self.timer() < datetime.fromisoformat(keep["until"]):
            instances = [i for i in instances if i.revision != keep["revision"]]
        plan = converge(
            revision.number,
            spec.replicas,
            spec.replicas,
            0,
            instances,
            traffic_to_target_only=True,
        )
        await self._apply(app, revision, plan)
        return bool(plan.stop or plan.start or self._draining)

    async def _down(self, app: App, instances: list[Instance]) -> bool:
        """``baepo down``: no traffic, no instances, no router; history stays."""
        listeners = self.traffic.running(app.app, app.env)
        if instances and MAIN in listeners:
            await self._push(app, Table(), MAIN)
        for instance in instances:
            if instance.phase != InstancePhase.STOPPING:
                self._stop(app, instance)
        if not instances and listeners:
            for listener in listeners:
                await self.traffic.stop(app.app, app.env, listener)
            await self.event(app, "app.down", "all instances and the router are stopped")
        return bool(instances)

    # -- actions -----------------------------------------------------------------------

    async def _apply(self, app: App, revision: Revision, plan: Plan) -> None:
        await self._route(app, revision, plan)
        await self._act(app, revision, plan)

    async def _route(self, app: App, revision: Revision, plan: Plan) -> None:
        """The plan's tables in the router: the main listener's, and the preview's or none."""
        if plan.traffic is not None:
            await self._push(app, Table(plan.traffic, plan.sticky, plan.header_routes), MAIN)
        if plan.preview is not None:
            await self.traffic.ensure(preview_config(revision))
            await self._push(app, Table(plan.preview), PREVIEW)
        elif PREVIEW in self.traffic.running(app.app, app.env):
            await self.traffic.stop(app.app, app.env, PREVIEW)

    async def _act(
        self, app: App, revision: Revision, plan: Plan, rollout: Rollout | None = None
    ) -> None:
        """The plan's stops and starts (a failed start on a placed host is noted for
        ``rollout``)."""
        instances = {i.id: i for i in await self.platform.list_instances(app.app, app.env)}
        for instance_id in plan.stop:
            if instance_id in instances and instance_id not in self._draining:
                self._stop(app, instances[instance_id])
        if plan.start:
            new_instance = await self._instance_spec(revision)
        for number in range(plan.start):
            host = plan.placements[number] if number < len(plan.placements) else None
            try:
                started = await self.platform.start_instance(replace(new_instance, host=host))
            except ExternalError as exc:
                if host is None or rollout is None:
                    raise
                # A host of a batch failed: the strategy skips it, or ends the rollout when
                # more hosts failed than ``target.max_failed_hosts`` allows.
                key = (app.app, app.env, rollout.id)
                for stale in [k for k in self._failed_hosts if k[:2] == key[:2] and k != key]:
                    del self._failed_hosts[stale]  # an earlier rollout is over
                    self._host_errors.pop(stale, None)
                self._failed_hosts.setdefault(key, set()).add(host)
                self._host_errors.setdefault(key, {})[host] = str(exc)[:300]
                await self.event(
                    app,
                    "host.failed",
                    f"cannot start an instance of revision {revision.number} on {host}: {exc}",
                    revision=revision.number,
                )
                self.wake()
                continue
            await self.event(
                app,
                "instance.started",
                f"started {started.id} (revision {started.revision}) on port {started.port}",
                revision=started.revision,
            )

    async def _instance_spec(self, revision: Revision) -> InstanceSpec:
        """``instance_spec`` with the spec's secrets resolved (at every start, so a changed
        secret reaches the next instances; the revision itself never holds a value)."""
        spec = instance_spec(revision)
        config = spec_of(revision)
        # Sealed run.env values go to the instance as secrets, so no platform record keeps them.
        plain, closed = sealed.split_env(spec.env_vars)
        if not config.secrets and not closed:
            return spec
        keyring = self.keyring or Keyring()
        values = await asyncio.to_thread(
            functools.partial(secret_env, scope=self.secret_scope),
            self.store, keyring, config, revision.app, revision.env, revision.spec_dir,
        )  # fmt: skip
        opened = await asyncio.to_thread(sealed.open_env, closed, keyring)
        return replace(spec, env_vars=plain, secret_env={**opened, **values})

    async def _push(self, app: App, table: Table, listener: str) -> None:
        if await self.traffic.push(app.app, app.env, table, listener):
            where = "" if listener == MAIN else f" ({listener})"
            await self.event(app, "traffic.changed", f"routing{where}: {table.describe()}")

    def _stop(self, app: App, instance: Instance) -> None:
        self._draining[instance.id] = asyncio.create_task(self._drain_and_stop(app, instance))

    async def _drain_and_stop(self, app: App, instance: Instance) -> None:
        """Wait for the router's in-flight requests to the instance to finish, then stop it."""
        try:
            revision = await self._revision_of(app, instance)
            deadline = time.monotonic() + spec_of(revision).router.drain_timeout
            while time.monotonic() < deadline and instance.phase != InstancePhase.FAILED:
                in_flight = await self.traffic.in_flight(app.app, app.env)
                if not in_flight.get(instance.address):
                    break
                await asyncio.sleep(0.05)
            await self.platform.stop_instance(instance.id)
            self._readiness.pop(instance.id, None)
            await self.event(
                app,
                "instance.stopped",
                f"stopped {instance.id} (revision {instance.revision})",
                revision=instance.revision,
            )
        except BaepoError as exc:
            log.warning("stopping %s failed: %s", instance.id, exc)
        finally:
            self._draining.pop(instance.id, None)
            self.wake()

    async def _revision_of(self, app: App, instance: Instance) -> Revision:
        """The instance's revision; for one no record explains (an instance taken over after
        a lost database, ``api.orphans``), the newest revision of app+env."""
        try:
            return await self.revision(app.app, app.env, instance.revision)
        except NotFoundError:
            known = await asyncio.to_thread(self.store.list_revisions, app.app, app.env)
            if not known:
                raise
            return max(known, key=lambda r: r.number)

    async def _note_readiness(self, app: App, instances: Sequence[Instance]) -> None:
        """Record readiness changes as events (silently learn it on the first pass)."""
        key = (app.app, app.env)
        ever = self._ever_ready.setdefault(key, set())
        ever.update(i.id for i in instances if i.ready)
        ever.intersection_update(i.id for i in instances)
        if key not in self._seen_apps:
            self._seen_apps.add(key)
            await self.traffic.adopt(app.app, app.env)
            for instance in instances:
                self._readiness[instance.id] = (
                    instance.ready and instance.phase == InstancePhase.RUNNING
                )
            return
        for instance in instances:
            if instance.phase == InstancePhase.STOPPING:
                continue
            was = self._readiness.get(instance.id)
            now_ready = instance.ready and instance.phase == InstancePhase.RUNNING
            if instance.phase == InstancePhase.FAILED:
                # once: a failed instance stays listed (a first deploy's, with nothing to go
                # back to) and must not be recorded as failing again on every pass
                if was is not None:
                    await self.event(
                        app,
                        "instance.failed",
                        f"{instance.id} failed: {instance.message}",
                        revision=instance.revision,
                    )
                    self._readiness.pop(instance.id, None)
                continue
            if was is None and not now_ready:
                self._readiness[instance.id] = False
            elif was != now_ready:
                self._readiness[instance.id] = now_ready
                word = "ready" if now_ready else "not ready"
                await self.event(
                    app,
                    f"instance.{word.replace(' ', '_')}",
                    f"{instance.id} is {word}",
                    revision=instance.revision,
                )

    async def event(
        self,
        app: App,
        kind: str,
        message: str,
        *,
        rollout: Rollout | None = None,
        revision: int | None = None,
    ) -> None:
        """Record an event. One the store cannot take (a full disk, a lost database) is not
        lost without a trace: it is counted in ``dropped``, logged with its cause, and the
        pass goes on (what it records is not worth stopping a rollback for)."""
        try:
            await self._append_event(app, kind, message, rollout=rollout, revision=revision)
        except BaepoError as exc:
            self.dropped.add(f"{app.app}/{app.env} {kind}: {message}", exc, (app.app, app.env))

    async def _append_event(
        self,
        app: App,
        kind: str,
        message: str,
        *,
        rollout: Rollout | None = None,
        revision: int | None = None,
    ) -> None:
        await asyncio.to_thread(
            self.store.append_event,
            Event(
                app=app.app,
                env=app.env,
                kind=kind,
                message=message,
                at=self.clock(),
                rollout_id=rollout.id if rollout else None,
                revision=revision
                if revision is not None
                else (rollout.revision if rollout else None),
            ),
        )

    async def wait_draining(self) -> None:
        """Let stops under way finish (used at shutdown)."""
        if self._draining:
            await asyncio.gather(*self._draining.values(), return_exceptions=True)
