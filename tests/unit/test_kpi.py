"""core.kpi: release KPIs and DORA metrics from hand-built revisions, rollouts and events."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import pytest

from baepo.core import kpi
from baepo.core.model import Cause, CauseKind, Event, Revision, Rollout, RolloutPhase

T0 = datetime(2025, 3, 1, tzinfo=UTC)
DAY = timedelta(days=1)
SINCE, UNTIL = T0, T0 + 10 * DAY


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def revision(number: int, origin: str = "deploy") -> Revision:
    return Revision(
        app="web", env="prod", number=number, version=f"{number}.0", config={},
        config_hash=str(number), spec_dir="/", created_by="t", created_at=T0, origin=origin,
    )  # fmt: skip


def rollout(
    rid: int,
    rev: int,
    phase: RolloutPhase,
    start: float,
    end: float | None,
    stable: int | None = None,
) -> Rollout:
    return Rollout(
        id=rid, app="web", env="prod", revision=rev, stable_revision=stable, strategy="rolling",
        phase=phase, message="", started_at=at(start), updated_at=at(end or start),
        finished_at=at(end) if end is not None else None,
    )  # fmt: skip


def event(kind: str, minutes: float, message: str = "", rollout_id: int | None = None) -> Event:
    return Event(
        app="web", env="prod", kind=kind, message=message, at=at(minutes), rollout_id=rollout_id
    )


def routing(minutes: float, table: str) -> Event:
    return event("traffic.changed", minutes, f"routing: {table}")


EMPTY = "nothing (no ready instance)"
H, RB, F, AB, SUP, PROG = (
    RolloutPhase.HEALTHY,
    RolloutPhase.ROLLED_BACK,
    RolloutPhase.FAILED,
    RolloutPhase.ABORTED,
    RolloutPhase.SUPERSEDED,
    RolloutPhase.PROGRESSING,
)


@dataclass
class Case:
    name: str
    rollouts: list[Rollout]
    expect: dict[str, object]
    revisions: list[Revision] = field(default_factory=lambda: [revision(n) for n in range(1, 9)])
    events: list[Event] = field(default_factory=list)
    since: datetime = SINCE
    until: datetime = UNTIL


CASES = [
    Case(
        "no deployments",
        [],
        {
            "deployments": 0,
            "finished": 0,
            "success_rate": None,
            "change_failure_rate": None,
            "deployments_per_day": 0.0,
            "rollbacks": 0,
            "downtime_seconds": 0.0,
        },
    ),
    Case(
        "only superseded: counted as deployments, left out of the rates",
        [rollout(1, 1, SUP, 0, 5), rollout(2, 2, SUP, 10, 12)],
        {"deployments": 2, "finished": 0, "success_rate": None, "change_failure_rate": None},
    ),
    Case(
        "one healthy, one rolled back (the CLI test's story)",
        [rollout(1, 1, H, 0, 2), rollout(2, 2, RB, 10, 11, stable=1)],
        {
            "deployments": 2,
            "finished": 2,
            "success_rate": 0.5,
            "change_failures": 1,
            "change_failure_rate": 0.5,
            "rollbacks": 1,
            "undos": 0,
            "deployments_per_day": 0.2,
            "deployments_per_week": pytest.approx(1.4),
        },
    ),
    Case(
        "deploy time: mean and median of healthy ones only",
        [
            rollout(1, 1, H, 0, 1),
            rollout(2, 2, H, 10, 12),
            rollout(3, 3, H, 20, 26),
            rollout(4, 4, RB, 30, 90, stable=3),
        ],
        {"deploy_time": kpi.DurationStats(3, 180.0, 120.0)},
    ),
    Case(
        "an undo right after a healthy deploy makes it a change failure",
        [
            rollout(1, 1, H, 0, 1),
            rollout(2, 2, H, 10, 11, stable=1),
            rollout(3, 3, H, 15, 17, stable=2),
        ],
        {
            "deployments": 2,
            "success_rate": 1.0,
            "change_failures": 1,
            "change_failure_rate": 0.5,
            "undos": 1,
            "rollbacks": 1,
            "time_to_restore": kpi.DurationStats(1, 120.0, 120.0),
            "rollback_time": kpi.DurationStats(1, 120.0, 120.0),
        },
        revisions=[revision(1), revision(2), revision(3, "undo of 1")],
    ),
    Case(
        "an undo after the window is not a change failure",
        [
            rollout(1, 1, H, 0, 1),
            rollout(2, 2, H, 10, 11, stable=1),
            rollout(3, 3, H, 11 + 25 * 60, 11 + 25 * 60 + 2, stable=2),
        ],
        {"change_failures": 0, "undos": 1},
        revisions=[revision(1), revision(2), revision(3, "undo of 1")],
    ),
    Case(
        "a switch back to a warm revision is an undo restored at once",
        [rollout(1, 1, H, 0, 1), rollout(2, 2, H, 10, 11, stable=1)],
        {
            "change_failures": 1,
            "undos": 1,
            "rollbacks": 1,
            "time_to_restore": kpi.DurationStats(1, 0.0, 0.0),
            "rollback_time": kpi.DurationStats(1, 30.0, 30.0),
        },
        events=[
            routing(11, "r2 100% on 2"),
            event("rollout.undone", 20, "tester undid revision 2", rollout_id=2),
            routing(20.5, "r1 100% on 2"),
        ],
    ),
    Case(
        "rolled back and aborted: restore is start to finish; rollback time from the routing",
        [
            rollout(1, 1, H, 0, 1),
            rollout(2, 2, RB, 10, 13, stable=1),
            rollout(3, 3, AB, 20, 25, stable=1),
        ],
        {
            "change_failures": 2,
            "change_failure_rate": 2 / 3,
            "rollbacks": 2,
            "time_to_restore": kpi.DurationStats(2, 240.0, 240.0),
            "rollback_time": kpi.DurationStats(2, 30.0, 30.0),
        },
        events=[
            routing(1, "r1 100% on 2"),
            # r2 never became ready: its rollback had no traffic to move
            routing(21, "r1 67% on 2, r3 33% on 1"),
            routing(26, "r1 100% on 2"),
            # the abort was decided at 25, the table changed at 26 -> 60 s; r2's: 0 s
        ],
    ),
    Case(
        "a failed first deploy is restored by the next healthy rollout",
        [rollout(1, 1, F, 0, 5), rollout(2, 2, H, 30, 32)],
        {
            "deployments": 2,
            "change_failures": 1,
            "unrestored": 0,
            "rollbacks": 0,
            "time_to_restore": kpi.DurationStats(1, 32 * 60.0, 32 * 60.0),
        },
    ),
    Case(
        "a failed deploy never followed by a healthy one stays open",
        [rollout(1, 1, F, 0, 5)],
        {"change_failures": 1, "unrestored": 1, "time_to_restore": kpi.DurationStats.of([])},
    ),
    Case(
        "in progress: a deployment, not finished",
        [rollout(1, 1, H, 0, 1), rollout(2, 2, PROG, 10, None, stable=1)],
        {
            "deployments": 2,
            "finished": 1,
            "outcomes": {
                "healthy": 1,
                "rolled_back": 0,
                "failed": 0,
                "aborted": 0,
                "superseded": 0,
                "in_progress": 1,
            },
        },
    ),
    Case(
        "period boundaries: since is inclusive, until exclusive, by start time",
        [
            rollout(1, 1, H, -1, 2),
            rollout(2, 2, H, 0, 2),
            rollout(3, 3, H, 59, 61),
            rollout(4, 4, H, 60, 61),
        ],
        {"deployments": 2, "deployments_per_day": 48.0},
        until=at(60),
    ),
    Case(
        "downtime: empty main table after serving; not before the first serve, not preview",
        [rollout(1, 1, H, 0, 1)],
        {"downtime_seconds": 150.0, "outages": 2},
        events=[
            routing(0.5, EMPTY),
            routing(1, "r1 100% on 2"),
            event("traffic.changed", 2, f"routing (preview): {EMPTY}"),
            routing(10, EMPTY),
            routing(12, "r1 100% on 1"),
            routing(20, "r1 100% on 0"),
            routing(20.5, "r1 100% on 1"),
        ],
    ),
    Case(
        "downtime: a baepo down is not downtime; an outage open at until is clipped",
        [rollout(1, 1, H, 0, 1)],
        {"downtime_seconds": 300.0, "outages": 1},
        events=[
            routing(1, "r1 100% on 2"),
            event("app.down_requested", 5),
            routing(5.1, EMPTY),
            event("rollout.created", 30),
            routing(31, "r1 100% on 2"),
            routing(55, EMPTY),
        ],
        until=at(60),
    ),
    Case(
        "downtime: an outage that began before since counts from since",
        [],
        {"downtime_seconds": 120.0, "outages": 1},
        events=[routing(-10, "r1 100% on 2"), routing(-5, EMPTY), routing(2, "r1 100% on 2")],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_metrics(case: Case) -> None:
    history = kpi.History("web", "prod", case.revisions, case.rollouts, case.events)
    report = kpi.build_report([history], case.since, case.until)
    for name, expected in case.expect.items():
        assert getattr(report, name) == expected, name
    assert len(report.apps) == 1
    assert report.apps[0].app == "web"


def test_several_apps_add_up_and_keep_their_own_numbers() -> None:
    one = kpi.History("a", "prod", [revision(1)], [rollout(1, 1, H, 0, 2)], [])
    two = kpi.History(
        "b", "prod", [revision(1), revision(2)],
        [rollout(1, 1, H, 0, 4), rollout(2, 2, RB, 10, 11, stable=1)], [],
    )  # fmt: skip
    report = kpi.build_report([one, two], SINCE, UNTIL)
    assert report.app is None
    assert report.deployments == 3
    assert report.success_rate == pytest.approx(2 / 3)
    assert report.deploy_time == kpi.DurationStats(2, 180.0, 180.0)
    assert [(p.app, p.deployments, p.change_failure_rate) for p in report.apps] == [
        ("a", 1, 0.0),
        ("b", 2, 0.5),
    ]


NOW = datetime(2025, 3, 31, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", NOW - 30 * DAY),
        ("2w", NOW - 14 * DAY),
        ("12h", NOW - timedelta(hours=12)),
        ("90m", NOW - timedelta(minutes=90)),
        ("0", NOW),
        ("2025-03-01", datetime(2025, 3, 1, tzinfo=UTC)),
        ("2025-03-01T10:00:00+09:00", datetime(2025, 3, 1, 1, tzinfo=UTC)),
    ],
)
def test_parse_moment(text: str, expected: datetime) -> None:
    assert kpi.parse_moment(text, NOW) == expected


@pytest.mark.parametrize("text", ["", "soon", "-3d", "30 days", "2025-13-01"])
def test_parse_moment_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="time ago"):
        kpi.parse_moment(text, NOW)


def test_daily_outcomes_one_entry_per_day_by_outcome() -> None:
    history = kpi.History(
        "web", "prod", [revision(1), revision(2), revision(3), revision(4, origin="undo of 3")],
        [rollout(1, 1, H, 0, 2), rollout(2, 2, RB, 10, 11, stable=1),
         rollout(3, 3, H, 60 * 24 + 5, 60 * 24 + 8), rollout(4, 4, H, 60 * 24 + 20, 60 * 24 + 21),
         rollout(5, 3, PROG, 60 * 48, None)],
        [],
    )  # fmt: skip
    days = kpi.daily_outcomes([history], SINCE, T0 + 3 * DAY)
    assert [day for day, _ in days] == [(T0 + n * DAY).date() for n in range(3)]
    assert all(set(counts) == set(kpi.OUTCOMES) for _, counts in days)
    first, second, third = (counts for _, counts in days)
    assert (first["healthy"], first["rolled_back"], sum(first.values())) == (1, 1, 2)
    assert (second["healthy"], sum(second.values())) == (1, 1)  # the undo is not a deployment
    assert (third["in_progress"], sum(third.values())) == (1, 1)


def test_daily_outcomes_of_a_partial_day_and_an_empty_period() -> None:
    history = kpi.History("web", "prod", [revision(1)], [rollout(1, 1, F, 30, 31)], [])
    days = kpi.daily_outcomes([history], at(20), at(40))
    assert len(days) == 1 and days[0][1]["failed"] == 1
    assert kpi.daily_outcomes([history], at(40), at(40)) == []
    # Midnight exactly: the period's end day is not included.
    assert len(kpi.daily_outcomes([history], SINCE, SINCE + DAY)) == 1


def test_deploy_durations_every_deployment_oldest_first() -> None:
    one = kpi.History("a", "prod", [revision(1)], [rollout(1, 1, H, 5, 7)], [])
    two = kpi.History(
        "b", "prod", [revision(1), revision(2), revision(3, origin="undo of 2")],
        [rollout(1, 1, RB, 0, 1.5), rollout(2, 2, PROG, 20, None), rollout(3, 3, H, 30, 31)], [],
    )  # fmt: skip
    found = kpi.deploy_durations([one, two], SINCE, UNTIL)
    assert [(d.app, d.revision, d.outcome, d.seconds) for d in found] == [
        ("b", 1, "rolled_back", 90.0),
        ("a", 1, "healthy", 120.0),
        ("b", 2, "in_progress", None),
    ]
    assert found[0].started_at == at(0) and found[0].env == "prod"
    assert kpi.deploy_durations([one, two], at(10), UNTIL)[0].revision == 2


def test_failures_are_counted_by_cause_most_frequent_first() -> None:
    gate = Cause(CauseKind.GATE, "hook 'migrate' (pre_deploy) failed")
    person = Cause(CauseKind.ABORTED, "baepo abort by bob")
    rollouts = [
        rollout(1, 1, H, 0, 2),
        replace(rollout(2, 2, RB, 10, 11, stable=1), cause=gate),
        replace(rollout(3, 3, F, 20, 21, stable=1), cause=gate),
        replace(rollout(4, 4, AB, 30, 31, stable=1), cause=person),
        rollout(5, 5, RB, 40, 41, stable=1),  # recorded before causes were
        replace(rollout(6, 6, SUP, 50, 51, stable=1), cause=Cause(CauseKind.SUPERSEDED, "x")),
    ]
    history = kpi.History("web", "prod", [revision(n) for n in range(1, 7)], rollouts, [])
    one = kpi.History("a", "prod", [revision(1)], [replace(rollouts[1], app="a")], [])
    report = kpi.build_report([history, one], SINCE, UNTIL)
    assert report.apps[0].failure_causes == {"gate": 2, "aborted": 1, "unknown": 1}
    assert report.failure_causes == {"gate": 3, "aborted": 1, "unknown": 1}
    assert list(report.failure_causes) == ["gate", "aborted", "unknown"]
