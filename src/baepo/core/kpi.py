"""Release KPIs and DORA metrics computed from baepo's own history (pure; no I/O).

Callers: ``api.report_routes`` (``GET /api/v1/report``, ``baepo report``) reads revisions,
rollouts and events from the store and passes them here with the period and the clock;
``web.pages`` (the dashboard's report page) also charts ``daily_outcomes`` and
``deploy_durations``.

Every metric covers a period ``[since, until)``: a *deployment* belongs to the period its
rollout **started** in, and its outcome is the one it has when the report is made. The
definitions (also in ``docs/kpis.md``):

- **deployment**: a rollout of a revision whose origin is ``deploy`` (a new release, or a
  ``baepo retry`` of one). Rollouts of undo revisions (origin ``undo of N``) are *undos*,
  counted apart and never as deployments.
- **outcomes**: deployments by phase: healthy, rolled_back, failed, aborted, superseded, and
  ``in_progress`` for those not finished yet.
- **finished**: healthy + rolled_back + failed + aborted. Superseded deployments (replaced by a
  newer deploy before they ended: neither a success nor a failure) and those in progress are
  left out of every rate below.
- **deployment frequency**: deployments (every outcome) ÷ the period's length in days; per
  week is the same times 7.
- **success rate**: healthy ÷ finished (None when nothing finished).
- **deploy time**: ``finished_at - started_at`` of healthy deployments: mean and median.
- **change failure** (DORA): a finished deployment that ended rolled_back, failed or aborted,
  or that ended healthy and was then undone within ``undo_window`` of its ``finished_at``:
  an undo rollout whose stable revision was the deployment's revision started in that window,
  or a ``rollout.undone`` event (the fast switch back to a still-warm revision) names it.
  **change failure rate** = change failures ÷ finished.
- **time to restore** (DORA MTTR) of each change failure: rolled_back or aborted: the
  rollout's ``started_at`` → ``finished_at`` (when all traffic was back on the stable
  revision); failed (a first deploy, with nothing to go back to): ``started_at`` → the
  ``finished_at`` of the next rollout of the app that ended healthy; undone: the undo's start
  (the undo rollout's ``started_at``, or the ``rollout.undone`` event) → the undo rollout's
  ``finished_at`` when it ended healthy, or that event's time for a switch back. A failure not
  restored yet is counted in ``unrestored`` and left out of the mean and median.
- **failures by cause**: the finished deployments that ended rolled_back, failed or aborted,
  counted by the kind of their recorded cause (``start_failed``, ``gate``, ``aborted``...;
  ``unknown`` for rollouts recorded before causes were), most frequent first.
- **rollbacks**: every return to an earlier revision: the period's rolled_back and aborted
  deployments, and the undo rollouts and switch backs that started in the period.
  **rollback time**: from the decision to go back (rolled_back or aborted: ``finished_at``;
  switch back: the event; undo rollout: ``started_at``) to traffic back on the earlier
  revision: for an undo rollout its ``finished_at`` when it ended healthy; otherwise the first
  change of the main routing table at or after the decision, or 0 when the table already
  served no revision but the one gone back to. Unknown durations are left out of the mean.
- **downtime**: the time, clipped to the period, during which the main listener's routing
  table, as recorded by ``traffic.changed`` events, had no ready instance with a share of the
  traffic, after the app had first served and outside a stop asked for with ``baepo down``
  (from ``app.down_requested`` to the next ``app.up`` or ``rollout.created``). **outages**
  counts such intervals. Not measured: failed requests while instances were routed (see the
  router's metrics and analysis for those), a router process that was not running, and any
  time the controller was not running to record changes.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from baepo.core.model import Event, Revision, Rollout, RolloutPhase
from baepo.spec.units import parse_duration

DEFAULT_UNDO_WINDOW = timedelta(hours=24)
FAILED_PHASES = frozenset({RolloutPhase.ROLLED_BACK, RolloutPhase.FAILED, RolloutPhase.ABORTED})
FINISHED_PHASES = FAILED_PHASES | {RolloutPhase.HEALTHY}
OUTCOMES = ("healthy", "rolled_back", "failed", "aborted", "superseded", "in_progress")
UNKNOWN_CAUSE = "unknown"  # a failure recorded without a cause (before causes were recorded)
EVENT_KINDS = frozenset({"traffic.changed", "app.down_requested", "app.up", "rollout.created"})
"""Event kinds the metrics read, besides ``rollout.undone`` (callers may pass only these)."""

_MAIN_ROUTING = re.compile(r"^routing: (?P<table>.*)$")
_BACKEND = re.compile(r"r(?P<revision>\d+) (?P<percent>\d+)% on (?P<upstreams>\d+)")
_AGO = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(d|w)\s*$")


@dataclass(frozen=True)
class History:
    """One app+environment's records: revisions, rollouts and events, each oldest first."""

    app: str
    env: str
    revisions: Sequence[Revision]
    rollouts: Sequence[Rollout]
    events: Sequence[Event]


@dataclass(frozen=True)
class DurationStats:
    """Count, mean and median of durations in seconds (None when there are none)."""

    count: int
    mean_seconds: float | None
    median_seconds: float | None

    @classmethod
    def of(cls, seconds: Sequence[float]) -> DurationStats:
        if not seconds:
            return cls(0, None, None)
        return cls(len(seconds), statistics.fmean(seconds), statistics.median(seconds))


@dataclass(frozen=True)
class Report:
    """The metrics of one app+environment, or of several together (``app``/``env`` None)."""

    app: str | None
    env: str | None
    since: datetime
    until: datetime
    deployments: int
    outcomes: dict[str, int]
    finished: int
    deployments_per_day: float
    deployments_per_week: float
    success_rate: float | None
    deploy_time: DurationStats
    change_failures: int
    change_failure_rate: float | None
    time_to_restore: DurationStats
    unrestored: int
    undos: int
    rollbacks: int
    rollback_time: DurationStats
    downtime_seconds: float
    outages: int
    undo_window_seconds: float
    failure_causes: dict[str, int] = field(default_factory=dict)
    apps: list[Report] = field(default_factory=list)


@dataclass
class _Facts:
    """Raw numbers of one or more histories, before rates and means."""

    deployments: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    deploy_times: list[float] = field(default_factory=list)
    change_failures: int = 0
    restore_times: list[float] = field(default_factory=list)
    unrestored: int = 0
    undos: int = 0
    rollbacks: int = 0
    rollback_times: list[float] = field(default_factory=list)
    downtime: float = 0.0
    outages: int = 0
    failure_causes: Counter[str] = field(default_factory=Counter)

    def add(self, other: _Facts) -> None:
        self.deployments += other.deployments
        self.outcomes.update(other.outcomes)
        self.deploy_times += other.deploy_times
        self.change_failures += other.change_failures
        self.restore_times += other.restore_times
        self.unrestored += other.unrestored
        self.undos += other.undos
        self.rollbacks += other.rollbacks
        self.rollback_times += other.rollback_times
        self.downtime += other.downtime
        self.outages += other.outages
        self.failure_causes.update(other.failure_causes)


def parse_moment(text: str, now: datetime) -> datetime:
    """A period bound: a time ago (``30d``, ``2w``, ``12h``, ``90m``: anything
    ``parse_duration`` reads, plus days and weeks) or an ISO 8601 date or time (UTC when no
    offset is given). Raises ValueError with a message for the user."""
    match = _AGO.match(text)
    if match:
        size = 86400.0 if match.group(2) == "d" else 7 * 86400.0
        return now - timedelta(seconds=float(match.group(1)) * size)
    try:
        return now - timedelta(seconds=parse_duration(text))
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"expected a time ago such as 30d, 2w or 12h, or an ISO date such as 2025-01-31, "
            f"got {text!r}"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def build_report(
    histories: Iterable[History],
    since: datetime,
    until: datetime,
    *,
    undo_window: timedelta = DEFAULT_UNDO_WINDOW,
    app: str | None = None,
    env: str | None = None,
) -> Report:
    """The metrics of every history together over ``[since, until)``, with each history's
    own report in ``apps`` (the module docstring defines each metric)."""
    total = _Facts()
    parts = []
    for history in histories:
        facts = _facts(history, since, until, undo_window)
        total.add(facts)
        parts.append(_report(facts, history.app, history.env, since, until, undo_window))
    return _report(total, app, env, since, until, undo_window, parts)


@dataclass(frozen=True)
class DeployDuration:
    """One deployment of the period: when it started, its outcome, and how long it took
    (``started_at`` to ``finished_at``; None while it is in progress)."""

    app: str
    env: str
    revision: int
    started_at: datetime
    outcome: str
    seconds: float | None


def daily_outcomes(
    histories: Iterable[History], since: datetime, until: datetime
) -> list[tuple[date, dict[str, int]]]:
    """Deployments per UTC day of ``[since, until)`` by outcome (every name of ``OUTCOMES``,
    0 included), one entry per day of the period, oldest first; a deployment counts on the
    day its rollout started, as in ``build_report``."""
    if until <= since:
        return []
    first = since.astimezone(UTC).date()
    last = (until - timedelta(microseconds=1)).astimezone(UTC).date()
    days = {
        first + timedelta(days=n): dict.fromkeys(OUTCOMES, 0)
        for n in range((last - first).days + 1)
    }
    for history in histories:
        for rollout in _deployments(history, since, until):
            days[rollout.started_at.astimezone(UTC).date()][_outcome(rollout)] += 1
    return sorted(days.items())


def deploy_durations(
    histories: Iterable[History], since: datetime, until: datetime
) -> list[DeployDuration]:
    """Every deployment of ``[since, until)`` with its outcome and duration, oldest first."""
    found = [
        DeployDuration(
            app=history.app,
            env=history.env,
            revision=rollout.revision,
            started_at=rollout.started_at,
            outcome=_outcome(rollout),
            seconds=_seconds(rollout.started_at, rollout.finished_at)
            if rollout.finished_at is not None
            else None,
        )
        for history in histories
        for rollout in _deployments(history, since, until)
    ]
    return sorted(found, key=lambda d: (d.started_at, d.app, d.env, d.revision))


def _deployments(history: History, since: datetime, until: datetime) -> list[Rollout]:
    """The rollouts of ``history`` that are deployments started in ``[since, until)``: a
    deploy or a promotion from another environment, not an undo, and not one an approver
    rejected (nothing of it ran)."""
    origins = {r.number: r.origin for r in history.revisions}
    return [
        r
        for r in history.rollouts
        if since <= r.started_at < until
        and origins.get(r.revision, "deploy").split(" ")[0] in ("deploy", "promotion")
        and (r.status.get("approval") or {}).get("decision") != "rejected"
    ]


def _outcome(rollout: Rollout) -> str:
    return rollout.phase.value if rollout.phase.terminal else "in_progress"


def _report(
    facts: _Facts,
    app: str | None,
    env: str | None,
    since: datetime,
    until: datetime,
    undo_window: timedelta,
    parts: list[Report] | None = None,
) -> Report:
    days = max((until - since).total_seconds(), 0.0) / 86400
    finished = sum(facts.outcomes[p.value] for p in FINISHED_PHASES)
    per_day = facts.deployments / days if days > 0 else 0.0
    return Report(
        app=app,
        env=env,
        since=since,
        until=until,
        deployments=facts.deployments,
        outcomes={name: facts.outcomes[name] for name in OUTCOMES},
        finished=finished,
        deployments_per_day=per_day,
        deployments_per_week=per_day * 7,
        success_rate=facts.outcomes["healthy"] / finished if finished else None,
        deploy_time=DurationStats.of(facts.deploy_times),
        change_failures=facts.change_failures,
        change_failure_rate=facts.change_failures / finished if finished else None,
        time_to_restore=DurationStats.of(facts.restore_times),
        unrestored=facts.unrestored,
        undos=facts.undos,
        rollbacks=facts.rollbacks,
        rollback_time=DurationStats.of(facts.rollback_times),
        downtime_seconds=facts.downtime,
        outages=facts.outages,
        undo_window_seconds=undo_window.total_seconds(),
        failure_causes=dict(
            sorted(facts.failure_causes.items(), key=lambda item: (-item[1], item[0]))
        ),
        apps=parts or [],
    )


def _seconds(start: datetime, end: datetime) -> float:
    return max((end - start).total_seconds(), 0.0)


def _facts(history: History, since: datetime, until: datetime, window: timedelta) -> _Facts:
    facts = _Facts()
    origins = {r.number: r.origin for r in history.revisions}
    rollouts = sorted(history.rollouts, key=lambda r: (r.started_at, r.id))
    undone = [e for e in history.events if e.kind == "rollout.undone"]
    routing = _routing(history.events)
    for rollout in rollouts:
        if not since <= rollout.started_at < until:
            continue
        if origins.get(rollout.revision, "deploy") != "deploy":
            facts.undos += 1
            facts.rollbacks += 1
            if rollout.phase == RolloutPhase.HEALTHY and rollout.finished_at is not None:
                facts.rollback_times.append(_seconds(rollout.started_at, rollout.finished_at))
            continue
        facts.deployments += 1
        phase = rollout.phase
        facts.outcomes[phase.value if phase.terminal else "in_progress"] += 1
        if phase in FAILED_PHASES:
            cause = rollout.cause
            facts.failure_causes[cause.kind.value if cause else UNKNOWN_CAUSE] += 1
        if phase == RolloutPhase.HEALTHY and rollout.finished_at is not None:
            facts.deploy_times.append(_seconds(rollout.started_at, rollout.finished_at))
        restore = _restore(rollout, rollouts, origins, undone, window)
        if restore is not None:
            facts.change_failures += 1
            if restore.restored is None:
                facts.unrestored += 1
            else:
                facts.restore_times.append(_seconds(restore.start, restore.restored))
        if phase in (RolloutPhase.ROLLED_BACK, RolloutPhase.ABORTED) and rollout.finished_at:
            facts.rollbacks += 1
            back = _traffic_back(routing, rollout.finished_at, rollout.stable_revision)
            if back is not None:
                facts.rollback_times.append(_seconds(rollout.finished_at, back))
    for event in undone:
        if since <= event.at < until:
            facts.undos += 1
            facts.rollbacks += 1
            back = _traffic_back(routing, event.at, None)
            if back is not None:
                facts.rollback_times.append(_seconds(event.at, back))
    facts.downtime, facts.outages = _downtime(history.events, since, until)
    return facts


@dataclass(frozen=True)
class _Restore:
    """A change failure: when restoring started, and when service was back (None: not yet)."""

    start: datetime
    restored: datetime | None


def _restore(
    rollout: Rollout,
    rollouts: Sequence[Rollout],
    origins: dict[int, str],
    undone: Sequence[Event],
    window: timedelta,
) -> _Restore | None:
    """The change failure ``rollout`` caused, or None when it is not one."""
    if rollout.phase in (RolloutPhase.ROLLED_BACK, RolloutPhase.ABORTED):
        return _Restore(rollout.started_at, rollout.finished_at)
    if rollout.phase == RolloutPhase.FAILED:
        later = [
            r.finished_at
            for r in rollouts
            if r.phase == RolloutPhase.HEALTHY
            and r.finished_at is not None
            and r.started_at >= rollout.started_at
            and r.id != rollout.id
        ]
        return _Restore(rollout.started_at, min(later) if later else None)
    if rollout.phase != RolloutPhase.HEALTHY or rollout.finished_at is None:
        return None
    end = rollout.finished_at + window
    for event in undone:
        if event.rollout_id == rollout.id and rollout.finished_at <= event.at <= end:
            return _Restore(event.at, event.at)
    for undo in rollouts:
        if (
            origins.get(undo.revision, "deploy") != "deploy"
            and undo.stable_revision == rollout.revision
            and rollout.finished_at <= undo.started_at <= end
        ):
            healthy = undo.phase == RolloutPhase.HEALTHY
            return _Restore(undo.started_at, undo.finished_at if healthy else None)
    return None


def _routing(events: Sequence[Event]) -> list[tuple[datetime, frozenset[int]]]:
    """The main listener's routing changes: when, and which revisions then got traffic
    (a revision with a share above 0 % on at least one ready upstream)."""
    changes = []
    for event in events:
        if event.kind != "traffic.changed":
            continue
        match = _MAIN_ROUTING.match(event.message)
        if match is None:  # another listener ("routing (preview): ...")
            continue
        served = frozenset(
            int(b["revision"])
            for b in _BACKEND.finditer(match["table"])
            if int(b["percent"]) > 0 and int(b["upstreams"]) > 0
        )
        changes.append((event.at, served))
    return sorted(changes, key=lambda change: change[0])


def _traffic_back(
    routing: Sequence[tuple[datetime, frozenset[int]]], decided: datetime, to: int | None
) -> datetime | None:
    """When traffic was back after a decision to go back: at once when the table already
    served only revision ``to``, else the first routing change at or after ``decided``."""
    before = [served for at, served in routing if at < decided]
    if to is not None and before and before[-1] == frozenset({to}):
        return decided
    for at, _ in routing:
        if at >= decided:
            return at
    return None


def _downtime(events: Sequence[Event], since: datetime, until: datetime) -> tuple[float, int]:
    """Seconds without a routed ready instance within ``[since, until)`` and the number of
    such intervals (see the module docstring for what counts)."""
    intervals: list[tuple[datetime, datetime]] = []
    served_once = stopped = False
    down_since: datetime | None = None
    for event in sorted(events, key=lambda e: (e.at, e.id or 0)):
        if event.kind == "app.down_requested":
            stopped = True
        elif event.kind in ("app.up", "rollout.created"):
            stopped = False
        elif event.kind == "traffic.changed":
            match = _MAIN_ROUTING.match(event.message)
            if match is None:
                continue
            serving = any(
                int(b["percent"]) > 0 and int(b["upstreams"]) > 0
                for b in _BACKEND.finditer(match["table"])
            )
            if serving:
                served_once = True
                if down_since is not None:
                    intervals.append((down_since, event.at))
                    down_since = None
                continue
            if served_once and not stopped and down_since is None:
                down_since = event.at
            continue
        else:
            continue
        if stopped and down_since is not None:
            intervals.append((down_since, event.at))
            down_since = None
    if down_since is not None:
        intervals.append((down_since, max(until, down_since)))
    total = 0.0
    count = 0
    for opened, closed in intervals:
        start, end = max(opened, since), min(closed, until)
        if end > start:
            total += (end - start).total_seconds()
            count += 1
    return total, count
