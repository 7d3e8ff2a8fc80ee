"""Analysis runs and measurements in the SQL store, on a SQLite file and a real PostgreSQL."""

from __future__ import annotations

import math
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.orm import Session

from baepo import store
from baepo.core.model import (
    AnalysisPhase,
    AnalysisRun,
    Event,
    Measurement,
    Revision,
    Rollout,
    RolloutPhase,
)
from baepo.errors import NotFoundError, StateError
from baepo.store import analysis_tables, tables
from baepo.store.migrate import alembic_config

T0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
SEOUL = timezone(timedelta(hours=9))


def new_rollout(db: store.SqlStore, env: str = "production") -> Rollout:
    return db.create_rollout(
        Rollout(
            id=0,
            app="shop",
            env=env,
            revision=2,
            stable_revision=1,
            strategy="canary",
            phase=RolloutPhase.ABORTED,  # terminal: several may exist per app+env
            message="",
            started_at=T0,
            updated_at=T0,
        )
    )


def run_of(rollout: Rollout, key: str = "step-1", **changes: Any) -> AnalysisRun:
    run = AnalysisRun(
        app=rollout.app,
        env=rollout.env,
        rollout_id=rollout.id,
        revision=rollout.revision,
        baseline=rollout.stable_revision,
        kind="step",
        key=key,
        templates=["success-rate", "latency"],
        phase=AnalysisPhase.RUNNING,
        message="",
        started_at=T0,
    )
    return replace(run, **changes)


def measurement(run_id: int, value: Any, **changes: Any) -> Measurement:
    taken = Measurement(
        run_id=run_id,
        template="success-rate",
        metric="ratio",
        phase=AnalysisPhase.SUCCESSFUL,
        value=value,
        message="0.99 >= 0.95",
        at=T0,
    )
    return replace(taken, **changes)


def same(a: Any, b: Any) -> bool:
    """Equal JSON values: NaN equals NaN, a float equals an int of exactly its value, and
    bools equal no number."""
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, float) and isinstance(b, int):
        return float(b) == a  # JSONB's numeric prints 1.5e300 without an exponent
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


def test_create_get_save_round_trip(db: store.SqlStore) -> None:
    rollout = new_rollout(db)
    metrics = {"success-rate/ratio": {"phase": "running", "successful": 2, "dry_run": False}}
    created = db.create_analysis_run(
        run_of(rollout, metrics=metrics, started_at=T0.astimezone(SEOUL))
    )
    assert created.id > 0
    fetched = db.get_analysis_run(created.id)
    assert fetched == created
    assert fetched.started_at == T0
    assert fetched.started_at.utcoffset() == timedelta(0)
    assert fetched.finished_at is None
    assert fetched.templates == ["success-rate", "latency"]
    assert fetched.baseline == 1
    assert fetched.metrics == metrics
    assert fetched.phase is AnalysisPhase.RUNNING

    finished = (T0 + timedelta(minutes=5)).astimezone(SEOUL)
    summary = {"success-rate/ratio": {"phase": "failed", "failed": 3, "last": math.inf}}
    saved = db.save_analysis_run(
        replace(
            fetched,
            phase=AnalysisPhase.FAILED,
            message="success-rate/ratio failed 3 times",
            finished_at=finished,
            metrics=summary,
            templates=["success-rate"],
        )
    )
    again = db.get_analysis_run(created.id)
    assert again == saved
    assert again.phase is AnalysisPhase.FAILED
    assert again.finished_at == finished
    assert again.finished_at is not None and again.finished_at.utcoffset() == timedelta(0)
    assert again.metrics == summary
    assert again.templates == ["success-rate"]
    assert again.message == "success-rate/ratio failed 3 times"
    assert db.save_analysis_run(again) == again  # idempotent


def test_a_key_is_unique_within_a_rollout(db: store.SqlStore) -> None:
    rollout = new_rollout(db)
    first = db.create_analysis_run(run_of(rollout, "step-3"))
    with pytest.raises(StateError, match="'step-3'"):
        db.create_analysis_run(run_of(rollout, "step-3", kind="background"))
    other = db.create_analysis_run(run_of(new_rollout(db), "step-3"))  # another rollout
    second = db.create_analysis_run(run_of(rollout, "background"))
    assert len({first.id, other.id, second.id}) == 3
    assert [r.id for r in db.list_analysis_runs("shop", "production", rollout_id=rollout.id)] == [
        first.id,
        second.id,
    ]
    with pytest.raises(StateError, match="'step-3'"):
        db.save_analysis_run(replace(second, key="step-3"))
    assert db.get_analysis_run(second.id) == second


def test_concurrent_create_with_one_key_admits_one(db: store.SqlStore) -> None:
    rollout = new_rollout(db)
    threads = 4
    created: list[AnalysisRun] = []
    refused: list[StateError] = []
    barrier = threading.Barrier(threads)

    def work() -> None:
        barrier.wait()
        try:
            created.append(db.create_analysis_run(run_of(rollout, "background")))
        except StateError as exc:
            refused.append(exc)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len(created) == 1
    assert len(refused) == threads - 1
    assert all("'background'" in str(exc) for exc in refused)
    assert db.list_analysis_runs("shop", "production") == created


def test_not_found_errors_name_the_thing(db: store.SqlStore) -> None:
    rollout = new_rollout(db)
    with pytest.raises(NotFoundError, match="analysis run 41 does not exist"):
        db.get_analysis_run(41)
    with pytest.raises(NotFoundError, match="analysis run 41 does not exist"):
        db.save_analysis_run(run_of(rollout, id=41))
    with pytest.raises(NotFoundError, match="rollout 99 does not exist"):
        db.create_analysis_run(run_of(rollout, rollout_id=99))
    with pytest.raises(NotFoundError, match="analysis run 41 does not exist"):
        db.add_measurement(measurement(41, 1.0))
    assert db.list_analysis_runs("shop", "production") == []
    assert db.list_measurements(41) == []


def test_naive_timestamps_are_refused(db: store.SqlStore) -> None:
    rollout = new_rollout(db)
    with pytest.raises(ValueError, match="started_at must be timezone-aware"):
        db.create_analysis_run(run_of(rollout, started_at=datetime(2025, 1, 1)))
    run = db.create_analysis_run(run_of(rollout))
    with pytest.raises(ValueError, match="at must be timezone-aware"):
        db.add_measurement(measurement(run.id, 1, at=datetime(2025, 1, 1)))
    assert db.list_measurements(run.id) == []


VALUES: list[Any] = [
    0.3125,
    -2.5e-7,
    1.5e300,
    7,
    -(2**40),
    0,
    True,
    False,
    None,
    "text",
    "",
    [],
    {},
    [0.25, 3, None, "x", [1.5], {"a": True}],
    {"vector": [{"pod": "a", "value": 0.5}], "n": 2, "nested": {"x": None}},
    math.nan,
    math.inf,
    -math.inf,
    [math.nan, math.inf, -math.inf, 1.0],
    {"p99": math.inf, "ratio": math.nan},
]


def test_measurement_values_round_trip(db: store.SqlStore) -> None:
    run = db.create_analysis_run(run_of(new_rollout(db)))
    stored = [db.add_measurement(measurement(run.id, value)) for value in VALUES]
    listed = db.list_measurements(run.id)
    assert [m.id for m in listed] == [m.id for m in stored]
    for value, added, read in zip(VALUES, stored, listed, strict=True):
        assert same(value, added.value), (value, added.value)
        assert same(value, read.value), (value, read.value)
        if isinstance(value, bool | type(None)):
            assert read.value is value
    assert isinstance(listed[VALUES.index(0.3125)].value, float)
    assert isinstance(listed[VALUES.index(7)].value, int)
    assert float(listed[VALUES.index(1.5e300)].value) == 1.5e300


def test_null_values_are_stored_as_json_or_sql_null(db: store.SqlStore) -> None:
    run = db.create_analysis_run(run_of(new_rollout(db)))
    with db.engine.begin() as connection:
        connection.execute(
            sa.insert(analysis_tables.MeasurementRow).values(
                run_id=run.id,
                template="t",
                metric="m",
                phase="error",
                value=sa.null(),
                message="source down",
                output="",
                at=T0,
            )
        )
    [read] = db.list_measurements(run.id)
    assert read.value is None
    assert read.phase is AnalysisPhase.ERROR


def test_measurement_fields_and_utc(db: store.SqlStore) -> None:
    run = db.create_analysis_run(run_of(new_rollout(db)))
    at = (T0 + timedelta(seconds=30)).astimezone(SEOUL)
    added = db.add_measurement(
        measurement(
            run.id,
            0.31,
            template="errors",
            metric="5xx",
            phase=AnalysisPhase.FAILED,
            message="0.31 > 0.05",
            output="HTTP 200\n{...}",
            at=at,
        )
    )
    [read] = db.list_measurements(run.id)
    assert read == added
    assert read.at == at
    assert read.at.utcoffset() == timedelta(0)
    assert (read.template, read.metric, read.phase) == ("errors", "5xx", AnalysisPhase.FAILED)
    assert (read.message, read.output) == ("0.31 > 0.05", "HTTP 200\n{...}")


def test_measurements_are_listed_oldest_first_newest_limit(db: store.SqlStore) -> None:
    rollout = new_rollout(db)
    run = db.create_analysis_run(run_of(rollout))
    other = db.create_analysis_run(run_of(rollout, "background"))
    added = []
    for i in range(7):
        added.append(db.add_measurement(measurement(run.id, i, at=T0 + timedelta(seconds=i))))
        db.add_measurement(measurement(other.id, -i))
    ids = [m.id for m in added]
    assert ids == sorted(ids)
    assert db.list_measurements(run.id) == added
    assert db.list_measurements(run.id, limit=3) == added[-3:]
    assert db.list_measurements(run.id, limit=0) == []
    assert [m.value for m in db.list_measurements(other.id, limit=2)] == [-5, -6]


def test_runs_are_listed_oldest_first_with_filters_and_limit(db: store.SqlStore) -> None:
    first, second = new_rollout(db), new_rollout(db)
    runs = [
        db.create_analysis_run(run_of(first, "step-1")),
        db.create_analysis_run(run_of(first, "step-2", revision=3)),
        db.create_analysis_run(run_of(second, "step-1")),
        db.create_analysis_run(run_of(second, "background", revision=3)),
        db.create_analysis_run(run_of(second, "guards", kind="guards")),
    ]
    staging = db.create_analysis_run(run_of(new_rollout(db, env="staging")))
    assert db.list_analysis_runs("shop", "production") == runs
    assert db.list_analysis_runs("shop", "production", limit=2) == runs[-2:]
    assert db.list_analysis_runs("shop", "production", limit=0) == []
    assert db.list_analysis_runs("shop", "production", rollout_id=first.id) == runs[:2]
    assert db.list_analysis_runs("shop", "production", revision=3) == [runs[1], runs[3]]
    assert db.list_analysis_runs("shop", "production", rollout_id=second.id, revision=3) == [
        runs[3]
    ]
    assert db.list_analysis_runs("shop", "production", rollout_id=second.id, limit=1) == [runs[4]]
    assert db.list_analysis_runs("shop", "staging") == [staging]
    assert db.list_analysis_runs("cart", "production") == []


def test_running_runs_of_a_rollout(db: store.SqlStore) -> None:
    rollout, other = new_rollout(db), new_rollout(db)
    step = db.create_analysis_run(run_of(rollout, "step-1"))
    background = db.create_analysis_run(run_of(rollout, "background", kind="background"))
    db.create_analysis_run(run_of(other, "step-1"))
    assert db.running_analysis_runs(rollout.id) == [step, background]
    done = db.save_analysis_run(
        replace(step, phase=AnalysisPhase.SUCCESSFUL, finished_at=T0 + timedelta(minutes=1))
    )
    assert done.phase is AnalysisPhase.SUCCESSFUL
    assert db.running_analysis_runs(rollout.id) == [background]
    db.save_analysis_run(replace(background, phase=AnalysisPhase.ERROR))
    assert db.running_analysis_runs(rollout.id) == []
    assert db.running_analysis_runs(12345) == []


def test_upgrade_from_0001_keeps_existing_data(url: str) -> None:
    engine = sa.create_engine(url)  # the store's own engine refuses an old schema
    try:
        with engine.begin() as connection:
            command.upgrade(alembic_config(connection), "0001")
        assert store.schema_revision(url) == "0001"
        with Session(engine) as session, session.begin():
            revision = tables.RevisionRow.from_record(
                Revision("shop", "production", 0, "1.0", {"a": [1, None]}, "h", "/srv", "me", T0),
                number=1,
            )
            later = {"source", "secrets"}  # columns added by later migrations
            session.execute(
                sa.insert(tables.RevisionRow).values(
                    {
                        column.key: getattr(revision, column.key)
                        for column in sa.inspect(tables.RevisionRow).column_attrs
                        if column.key not in later
                    }
                )
            )
            rollout = tables.RolloutRow()
            rollout.assign(
                Rollout(
                    0, "shop", "production", 1, None, "canary", RolloutPhase.PAUSED, "", T0, T0
                ),
                version=4,
            )
            rollout_columns = {
                column.key: getattr(rollout, column.key)
                for column in sa.inspect(tables.RolloutRow).column_attrs
                if column.key not in {"id", "cause"}  # ``cause``: added by a later migration
            }
            rollout_id = session.execute(
                sa.insert(tables.RolloutRow).values(rollout_columns).returning(tables.RolloutRow.id)
            ).scalar_one()
            session.add(
                tables.EventRow.from_record(
                    Event("shop", "production", "paused", "", T0, rollout_id)
                )
            )
    finally:
        engine.dispose()

    assert store.migrate(url) == store.head_revision()
    with store.open_store(url, upgrade=False) as db:
        [kept] = db.list_revisions("shop", "production")
        assert kept.config == {"a": [1, None]}
        active = db.active_rollout("shop", "production")
        assert active is not None
        assert (active.phase, active.version, active.started_at) == (RolloutPhase.PAUSED, 4, T0)
        assert [e.kind for e in db.list_events("shop", "production")] == ["paused"]
        run = db.create_analysis_run(run_of(active))
        db.add_measurement(measurement(run.id, 0.5))
        assert [m.value for m in db.list_measurements(run.id)] == [0.5]


def test_downgrade_to_0001_and_back(url: str) -> None:
    store.migrate(url)
    engine = sa.create_engine(url)
    try:
        with engine.begin() as connection:
            command.downgrade(alembic_config(connection), "0001")
        with engine.connect() as connection:
            names = set(sa.inspect(connection).get_table_names())
        assert "analysis_runs" not in names
        assert "measurements" not in names
        assert "rollouts" in names
    finally:
        engine.dispose()
    assert store.migrate(url) == store.head_revision()
    with store.open_store(url, upgrade=False) as db:
        assert db.list_analysis_runs("shop", "production") == []
