"""``SqlStore``: the ``core.ports.Store`` over SQLAlchemy, domain records in and out.

Callers: the controller (through ``asyncio.to_thread``), the API (in FastAPI's thread pool) and
the CLI, all via ``store.open_store``. Every method is one transaction and safe to call from
several threads; rows never leave this module, and every SQLAlchemy exception becomes a baepo
error (StateError for conflicts, NotFoundError, TransientError, ExternalError).

``SqlStore`` keeps apps, revisions, rollouts and events here; the other records come from
the classes it inherits, one module each: ``analysis_records`` (analysis runs and
measurements), ``access_records`` (tokens, audit, users, sessions) and ``pipeline_records``
(locks, secrets, gate runs, backups); ``transactions`` holds what they share.

Concurrency: writes of apps and rollouts compare-and-set the ``version`` column. Revision
numbers and event ids are assigned while holding a per app+env lock (an advisory lock on
PostgreSQL; SQLite's write transactions are serialised anyway), so numbers are gap-free and
events become visible in id order, which lets a reader follow them with ``after``. At most one
non-terminal rollout per app+env is also enforced by a partial unique index.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from baepo.core.model import TERMINAL_PHASES, App, Event, Revision, Rollout
from baepo.core.ports import Lease
from baepo.errors import NotFoundError, StateError
from baepo.store import engine as store_engine
from baepo.store import lease as store_lease
from baepo.store import migrate
from baepo.store.access_records import AccessRecords
from baepo.store.analysis_records import AnalysisRecords
from baepo.store.pipeline_records import PipelineRecords
from baepo.store.tables import AppRow, EventRow, RevisionRow, RolloutRow
from baepo.store.transactions import conflict, rowcount

_TERMINAL = sorted(phase.value for phase in TERMINAL_PHASES)


class SqlStore(AnalysisRecords, AccessRecords, PipelineRecords):
    """Apps, revisions, rollouts and events here; analysis runs, access records and the
    release pipeline's records from the classes it inherits. In SQLite or PostgreSQL (see
    ``open_store``)."""

    @property
    def url(self) -> str:
        """The database URL, password hidden."""
        return store_engine.redact(self._engine.url)

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine, for the store's own tests and migrations."""
        return self._engine

    def close(self) -> None:
        """Close every pooled connection. Idempotent; the store reconnects if used again."""
        self._engine.dispose()

    def __enter__(self) -> SqlStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def schema_revision(self) -> str | None:
        """The database's schema revision (``migrate.head_revision()`` once migrated)."""
        return migrate.schema_revision(self._engine)

    def migrate(self) -> str:
        """Bring the schema to head (idempotent); returns the head revision."""
        return migrate.upgrade(self._engine)

    # -- apps -------------------------------------------------------------------------------

    def get_app(self, app: str, env: str) -> App | None:
        with self._reading("read app") as session:
            row = session.get(AppRow, (app, env))
            return None if row is None else row.to_record()

    def list_apps(self) -> list[App]:
        with self._reading("list apps") as session:
            rows = session.scalars(sa.select(AppRow).order_by(AppRow.app, AppRow.env))
            return [row.to_record() for row in rows]

    def save_app(self, app: App) -> App:
        """Insert (version 0) or compare-and-set update; returns the record with version+1."""
        name = f"app {app.app} in {app.env}"
        with self._writing(f"save {name}") as session:
            if app.version == 0:
                row = AppRow.from_record(app, version=1)
                session.add(row)
                if not self._flush_unique(session):
                    raise StateError(f"{name} already exists (saved with version 0)")
                return row.to_record()
            values = AppRow.from_record(app, version=app.version + 1)
            result = session.execute(
                sa.update(AppRow)
                .where(AppRow.app == app.app, AppRow.env == app.env)
                .where(AppRow.version == app.version)
                .values(
                    state=values.state,
                    stable_revision=values.stable_revision,
                    updated_at=values.updated_at,
                    version=values.version,
                )
            )
            if rowcount(result) == 1:
                return values.to_record()
            found = session.get(AppRow, (app.app, app.env))
            if found is None:
                raise NotFoundError(f"{name} does not exist (saved with version {app.version})")
            raise conflict(name, app.version, found.version)

    # -- revisions --------------------------------------------------------------------------

    def add_revision(self, revision: Revision) -> Revision:
        """Store a new revision numbered last + 1, or ``revision.number`` when that is higher
        (a first revision numbered after instances that run without one, see
        ``controller.releases``)."""
        with self._writing(f"add a revision of {revision.app} in {revision.env}") as session:
            store_engine.lock(session.connection(), "revisions", revision.app, revision.env)
            last = session.scalar(
                sa.select(sa.func.max(RevisionRow.number)).where(
                    RevisionRow.app == revision.app, RevisionRow.env == revision.env
                )
            )
            row = RevisionRow.from_record(revision, number=max((last or 0) + 1, revision.number))
            session.add(row)
            session.flush()
            return row.to_record()

    def get_revision(self, app: str, env: str, number: int) -> Revision:
        """Raises NotFoundError naming the revision when it does not exist."""
        with self._reading("read a revision") as session:
            row = session.get(RevisionRow, (app, env, number))
            if row is None:
                raise NotFoundError(f"revision {number} of app {app} in {env} does not exist")
            return row.to_record()

    def list_revisions(self, app: str, env: str) -> list[Revision]:
        """Oldest first."""
        with self._reading("list revisions") as session:
            rows = session.scalars(
                sa.select(RevisionRow)
                .where(RevisionRow.app == app, RevisionRow.env == env)
                .order_by(RevisionRow.number)
            )
            return [row.to_record() for row in rows]

    # -- rollouts ---------------------------------------------------------------------------

    def create_rollout(self, rollout: Rollout) -> Rollout:
        """Insert with a new ``id`` and version 1. Raises StateError if app+env already has a
        rollout in a non-terminal phase (also enforced by the ``uq_rollouts_active`` index)."""
        where = f"{rollout.app} in {rollout.env}"
        with self._writing(f"create a rollout of {where}") as session:
            active = self._active(session, rollout.app, rollout.env)
            if active is not None and not rollout.phase.terminal:
                raise _already_active(active)
            row = RolloutRow()
            row.assign(rollout, version=1)
            session.add(row)
            if not self._flush_unique(session):
                raise StateError(f"a rollout of {where} is already in progress")
            return row.to_record()

    def save_rollout(self, rollout: Rollout) -> Rollout:
        """Compare-and-set on ``version``; returns the record with version+1."""
        name = f"rollout {rollout.id}"
        with self._writing(f"save {name}") as session:
            row = RolloutRow(id=rollout.id)
            row.assign(rollout, version=rollout.version + 1)
            values = {
                column.key: getattr(row, column.key)
                for column in sa.inspect(RolloutRow).column_attrs
                if column.key != "id"
            }
            statement = (
                sa.update(RolloutRow)
                .where(RolloutRow.id == rollout.id, RolloutRow.version == rollout.version)
                .values(values)
            )
            try:
                with session.begin_nested():
                    result = session.execute(statement)
            except sa_exc.IntegrityError as exc:
                active = self._active(session, rollout.app, rollout.env)
                if active is not None and active.id != rollout.id:
                    raise _already_active(active) from exc
                raise
            if rowcount(result) == 1:
                return row.to_record()
            found = session.get(RolloutRow, rollout.id)
            if found is None:
                raise NotFoundError(f"{name} does not exist")
            raise conflict(name, rollout.version, found.version)

    def get_rollout(self, rollout_id: int) -> Rollout:
        """Raises NotFoundError naming the rollout when it does not exist."""
        with self._reading("read a rollout") as session:
            row = session.get(RolloutRow, rollout_id)
            if row is None:
                raise NotFoundError(f"rollout {rollout_id} does not exist")
            return row.to_record()

    def active_rollout(self, app: str, env: str) -> Rollout | None:
        """The rollout of app+env in a non-terminal phase, if any."""
        with self._reading("read the active rollout") as session:
            return self._active(session, app, env)

    def active_rollouts(self) -> list[Rollout]:
        """Every rollout in a non-terminal phase, oldest first."""
        with self._reading("list active rollouts") as session:
            rows = session.scalars(
                sa.select(RolloutRow)
                .where(RolloutRow.phase.not_in(_TERMINAL))
                .order_by(RolloutRow.id)
            )
            return [row.to_record() for row in rows]

    def list_rollouts(self, app: str, env: str) -> list[Rollout]:
        """Oldest first."""
        with self._reading("list rollouts") as session:
            rows = session.scalars(
                sa.select(RolloutRow)
                .where(RolloutRow.app == app, RolloutRow.env == env)
                .order_by(RolloutRow.id)
            )
            return [row.to_record() for row in rows]

    def latest_rollout(self, app: str, env: str) -> Rollout | None:
        """The most recent rollout of app+env, whatever its phase."""
        with self._reading("read the latest rollout") as session:
            row = session.scalars(
                sa.select(RolloutRow)
                .where(RolloutRow.app == app, RolloutRow.env == env)
                .order_by(RolloutRow.id.desc())
                .limit(1)
            ).first()
            return row.to_record() if row else None

    # -- events -----------------------------------------------------------------------------

    def append_event(self, event: Event) -> Event:
        """Append; returns the event with its ``id`` (greater than every earlier one)."""
        with self._writing(f"record an event of {event.app} in {event.env}") as session:
            store_engine.lock(session.connection(), "events", event.app, event.env)
            row = EventRow.from_record(event)
            session.add(row)
            try:
                session.flush()
            except sa_exc.IntegrityError as exc:
                raise NotFoundError(
                    f"cannot record event {event.kind!r}: rollout {event.rollout_id} does not exist"
                ) from exc
            return row.to_record()

    def list_events(
        self,
        app: str,
        env: str,
        *,
        after: int = 0,
        limit: int = 200,
        rollout_id: int | None = None,
    ) -> list[Event]:
        """Events with id > ``after``, oldest first, at most ``limit`` of them."""
        statement = (
            sa.select(EventRow)
            .where(EventRow.app == app, EventRow.env == env, EventRow.id > after)
            .order_by(EventRow.id)
            .limit(max(limit, 0))
        )
        if rollout_id is not None:
            statement = statement.where(EventRow.rollout_id == rollout_id)
        with self._reading("list events") as session:
            return [row.to_record() for row in session.scalars(statement)]

    def recent_events(self, app: str, env: str, *, limit: int = 20) -> list[Event]:
        """The newest ``limit`` events of app+env, oldest first."""
        statement = (
            sa.select(EventRow)
            .where(EventRow.app == app, EventRow.env == env)
            .order_by(EventRow.id.desc())
            .limit(max(limit, 0))
        )
        with self._reading("list recent events") as session:
            return [row.to_record() for row in session.scalars(statement)][::-1]

    # -- leadership -------------------------------------------------------------------------

    def lease(self, name: str, identity: str, *, ttl: float) -> Lease:
        """The leader lease ``name`` (see ``store.lease``); opens nothing until acquired."""
        return store_lease.open_lease(self._engine, name, identity, ttl=ttl)

    # -- helpers --------------------------------------------------------------------------

    @staticmethod
    def _active(session: Session, app: str, env: str) -> Rollout | None:
        row = session.scalar(
            sa.select(RolloutRow)
            .where(RolloutRow.app == app, RolloutRow.env == env)
            .where(RolloutRow.phase.not_in(_TERMINAL))
            .order_by(RolloutRow.id.desc())
            .limit(1)
        )
        return None if row is None else row.to_record()


def _already_active(active: Rollout) -> StateError:
    return StateError(
        f"rollout {active.id} of {active.app} in {active.env} is still {active.phase.value}",
        hint="wait for it to finish, or promote or abort it first",
    )
