"""The SQL store against real databases: a SQLite file and a throwaway PostgreSQL cluster."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from baepo import store
from baepo.core.model import (
    App,
    AppState,
    Cause,
    CauseKind,
    Event,
    Revision,
    Rollout,
    RolloutPhase,
)
from baepo.errors import NotFoundError, StateError
from baepo.store import tables

T0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def revision(app: str = "shop", env: str = "production", version: str = "1.0") -> Revision:
    return Revision(
        app=app,
        env=env,
        number=0,
        version=version,
        config={"app": app, "replicas": 3, "nested": {"list": [1, 2.5, None, "x"]}},
        config_hash="abc123",
        spec_dir="/srv/shop",
        created_by="alice",
        created_at=T0,
        message="ship it",
    )


def rollout(
    app: str = "shop", env: str = "production", phase: RolloutPhase = RolloutPhase.PENDING
) -> Rollout:
    return Rollout(
        id=0,
        app=app,
        env=env,
        revision=2,
        stable_revision=1,
        strategy="canary",
        phase=phase,
        message="",
        started_at=T0,
        updated_at=T0,
        status={"step": 0, "weights": {"1": 100, "2": 0}},
    )


def event(kind: str, rollout_id: int | None = None, **data: object) -> Event:
    return Event(
        app="shop",
        env="production",
        kind=kind,
        message=f"{kind} happened",
        at=T0,
        rollout_id=rollout_id,
        data=dict(data),
    )


def test_migrates_an_empty_database_to_head(url: str) -> None:
    assert store.schema_revision(url) is None
    assert store.migrate(url) == store.head_revision()
    assert store.schema_revision(url) == store.head_revision()
    assert store.migrate(url) == store.head_revision()  # idempotent


def test_migrations_match_the_models(db: store.SqlStore) -> None:
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, tables.Base.metadata) == []
        names = set(sa.inspect(connection).get_table_names())
    assert {"apps", "revisions", "rollouts", "events"} <= names


def test_open_without_upgrade_refuses_an_old_schema(url: str) -> None:
    with pytest.raises(StateError, match="schema revision none, baepo needs") as info:
        store.open_store(url, upgrade=False)
    assert info.value.hint == "run: baepo db upgrade"
    store.migrate(url)
    store.open_store(url, upgrade=False).close()


def test_revisions_are_numbered_per_app_and_env(db: store.SqlStore) -> None:
    numbers = [db.add_revision(revision(version=f"1.{i}")).number for i in range(3)]
    assert numbers == [1, 2, 3]
    assert db.add_revision(revision(env="staging")).number == 1
    assert db.add_revision(revision(app="cart")).number == 1
    listed = db.list_revisions("shop", "production")
    assert [(r.number, r.version) for r in listed] == [(1, "1.0"), (2, "1.1"), (3, "1.2")]
    assert db.get_revision("shop", "production", 2) == listed[1]
    assert db.list_revisions("nothing", "here") == []


def test_a_revision_asked_to_be_numbered_higher_keeps_that_number(db: store.SqlStore) -> None:
    """After a lost database, revision numbers continue after those still running."""
    assert db.add_revision(replace(revision(), number=7)).number == 7
    assert db.add_revision(revision()).number == 8
    assert db.add_revision(replace(revision(), number=3)).number == 9  # never goes back


def test_concurrent_add_revision_gives_distinct_numbers(db: store.SqlStore) -> None:
    threads, per_thread = 6, 5
    numbers: list[int] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads)

    def work() -> None:
        barrier.wait()
        try:
            for _ in range(per_thread):
                numbers.append(db.add_revision(revision()).number)
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []
    assert sorted(numbers) == list(range(1, threads * per_thread + 1))


def test_revision_round_trips_json_and_aware_utc(db: store.SqlStore) -> None:
    seoul = timezone(timedelta(hours=9))
    stored = db.add_revision(
        Revision(**{**revision().__dict__, "created_at": T0.astimezone(seoul)})
    )
    fetched = db.get_revision("shop", "production", stored.number)
    assert fetched.config == revision().config
    assert fetched.created_at == T0
    assert fetched.created_at.utcoffset() == timedelta(0)
    assert fetched.origin == "deploy"
    assert fetched == stored


def test_naive_datetimes_are_refused(db: store.SqlStore) -> None:
    with pytest.raises(ValueError, match="created_at must be timezone-aware"):
        db.add_revision(Revision(**{**revision().__dict__, "created_at": datetime(2025, 1, 1)}))
    assert db.list_revisions("shop", "production") == []


def test_not_found_messages_name_the_thing(db: store.SqlStore) -> None:
    with pytest.raises(NotFoundError, match="revision 7 of app shop in production"):
        db.get_revision("shop", "production", 7)
    with pytest.raises(NotFoundError, match="rollout 42 does not exist"):
        db.get_rollout(42)
    with pytest.raises(NotFoundError, match="rollout 42 does not exist"):
        db.save_rollout(Rollout(**{**rollout().__dict__, "id": 42, "version": 1}))
    with pytest.raises(NotFoundError, match="app shop in production does not exist"):
        db.save_app(App("shop", "production", AppState.RUNNING, None, T0, version=3))
    assert db.get_app("shop", "production") is None


def test_app_insert_then_compare_and_set(db: store.SqlStore) -> None:
    first = db.save_app(App("shop", "production", AppState.RUNNING, None, T0))
    assert first.version == 1
    with pytest.raises(StateError, match="already exists"):
        db.save_app(App("shop", "production", AppState.RUNNING, None, T0))
    later = T0 + timedelta(minutes=5)
    second = db.save_app(App("shop", "production", AppState.DOWN, 3, later, version=first.version))
    assert second.version == 2
    with pytest.raises(StateError, match="changed concurrently"):
        db.save_app(first)
    assert db.get_app("shop", "production") == second
    db.save_app(App("cart", "staging", AppState.RUNNING, 1, T0))
    assert [(a.app, a.env) for a in db.list_apps()] == [("cart", "staging"), ("shop", "production")]


def test_rollout_compare_and_set(db: store.SqlStore) -> None:
    created = db.create_rollout(rollout())
    assert created.id > 0
    assert created.version == 1
    moved = db.save_rollout(
        Rollout(**{**created.__dict__, "phase": RolloutPhase.PROGRESSING, "status": {"step": 1}})
    )
    assert moved.version == 2
    with pytest.raises(StateError, match="changed concurrently"):
        db.save_rollout(Rollout(**{**created.__dict__, "phase": RolloutPhase.ABORTED}))
    fetched = db.get_rollout(created.id)
    assert fetched == moved
    assert fetched.phase is RolloutPhase.PROGRESSING
    assert fetched.status == {"step": 1}


def test_a_rollout_keeps_its_cause_and_evidence(db: store.SqlStore) -> None:
    created = db.create_rollout(rollout())
    assert created.cause is None
    cause = Cause(
        CauseKind.NEVER_READY,
        "no instance of revision 2 became ready in 60s",
        ("GET /health/ready → 404", "shop-2-a1: connection refused"),
    )
    ended = db.save_rollout(replace(created, phase=RolloutPhase.ROLLED_BACK, cause=cause))
    fetched = db.get_rollout(created.id)
    assert fetched == ended
    assert fetched.cause == cause
    assert Cause.from_json({"kind": "no such kind", "summary": "x"}) is None


def test_only_one_active_rollout_per_app_and_env(db: store.SqlStore) -> None:
    first = db.create_rollout(rollout())
    with pytest.raises(StateError, match=f"rollout {first.id} of shop in production"):
        db.create_rollout(rollout())
    other_env = db.create_rollout(rollout(env="staging"))
    assert db.active_rollout("shop", "production") == first
    assert {r.id for r in db.active_rollouts()} == {first.id, other_env.id}

    finished = T0 + timedelta(minutes=3)
    done = db.save_rollout(
        Rollout(**{**first.__dict__, "phase": RolloutPhase.HEALTHY, "finished_at": finished})
    )
    assert done.finished_at == finished
    assert db.active_rollout("shop", "production") is None
    second = db.create_rollout(rollout())
    assert second.id > first.id
    assert [r.id for r in db.list_rollouts("shop", "production")] == [first.id, second.id]

    # Reviving a finished rollout while another is active is refused too.
    with pytest.raises(StateError, match=f"rollout {second.id}"):
        db.save_rollout(Rollout(**{**done.__dict__, "phase": RolloutPhase.PROGRESSING}))


def test_database_enforces_one_active_rollout(db: store.SqlStore) -> None:
    db.create_rollout(rollout())
    columns = {
        "app": "shop",
        "env": "production",
        "revision": 3,
        "strategy": "canary",
        "phase": "paused",
        "message": "",
        "started_at": T0,
        "updated_at": T0,
        "status": {},
        "version": 1,
    }
    with pytest.raises(sa.exc.IntegrityError), db.engine.begin() as connection:
        connection.execute(sa.insert(tables.RolloutRow).values(columns))
    with db.engine.begin() as connection:
        connection.execute(sa.insert(tables.RolloutRow).values({**columns, "phase": "aborted"}))


def test_concurrent_create_rollout_admits_one(db: store.SqlStore) -> None:
    threads = 4
    created: list[Rollout] = []
    refused: list[StateError] = []
    barrier = threading.Barrier(threads)

    def work() -> None:
        barrier.wait()
        try:
            created.append(db.create_rollout(rollout()))
        except StateError as exc:
            refused.append(exc)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len(created) == 1
    assert len(refused) == threads - 1


def test_events_round_trip_in_order_with_filters(db: store.SqlStore) -> None:
    first = db.create_rollout(rollout())
    appended = [
        db.append_event(event("started", first.id, weights={"2": 5}, ok=True)),
        db.append_event(event("note")),
        db.append_event(event("weight", first.id, weight=25.5, list=[1, "a", None])),
        db.append_event(event("paused", first.id)),
    ]
    db.append_event(Event("shop", "staging", "elsewhere", "", T0))
    ids = [e.id or 0 for e in appended]
    assert all(i > 0 for i in ids)
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)

    listed = db.list_events("shop", "production")
    assert listed == appended
    assert listed[0].data == {"weights": {"2": 5}, "ok": True}
    assert listed[2].data == {"weight": 25.5, "list": [1, "a", None]}
    assert listed[0].at == T0
    assert listed[0].actor == "controller"

    assert db.list_events("shop", "production", after=ids[1]) == appended[2:]
    assert db.list_events("shop", "production", limit=2) == appended[:2]
    assert db.list_events("shop", "production", limit=0) == []
    by_rollout = db.list_events("shop", "production", rollout_id=first.id)
    assert [e.kind for e in by_rollout] == ["started", "weight", "paused"]
    assert db.list_events("shop", "production", after=ids[0], limit=1, rollout_id=first.id) == [
        appended[2]
    ]
    assert [e.kind for e in db.list_events("shop", "staging")] == ["elsewhere"]
    assert db.recent_events("shop", "production", limit=2) == appended[2:]
    assert db.recent_events("shop", "production", limit=10) == appended
    assert db.recent_events("shop", "nowhere") == []


def test_latest_rollout_is_the_newest_whatever_its_phase(db: store.SqlStore) -> None:
    assert db.latest_rollout("shop", "production") is None
    first = db.create_rollout(rollout())
    assert db.latest_rollout("shop", "production") == first
    ended = db.save_rollout(replace(first, phase=RolloutPhase.ABORTED))
    assert db.latest_rollout("shop", "production") == ended
    second = db.create_rollout(rollout())
    assert db.latest_rollout("shop", "production") == second
    assert db.latest_rollout("shop", "staging") is None


def test_event_of_unknown_rollout_is_refused(db: store.SqlStore) -> None:
    with pytest.raises(NotFoundError, match="rollout 99 does not exist"):
        db.append_event(event("ghost", 99))
    assert db.list_events("shop", "production") == []


def test_concurrent_events_are_listed_in_id_order(db: store.SqlStore) -> None:
    threads, per_thread = 4, 10
    barrier = threading.Barrier(threads)

    def work(n: int) -> None:
        barrier.wait()
        for i in range(per_thread):
            db.append_event(event("tick", None, worker=n, i=i))

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    listed = db.list_events("shop", "production", limit=1000)
    ids = [e.id or 0 for e in listed]
    assert len(listed) == threads * per_thread
    assert ids == sorted(ids)
    for n in range(threads):
        assert [e.data["i"] for e in listed if e.data["worker"] == n] == list(range(per_thread))


def test_store_reconnects_after_close(db: store.SqlStore) -> None:
    db.add_revision(revision())
    db.close()
    db.close()
    assert len(db.list_revisions("shop", "production")) == 1
