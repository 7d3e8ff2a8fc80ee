"""``SqlStore``: the ``core.ports.Store`` over SQLAlchemy, domain records in and out.

Callers: the controller (through ``asyncio.to_thread``), the API (in FastAPI's thread pool) and
the CLI, all via ``store.open_store``. Every method is one transaction and safe to call from
several threads; rows never leave this module, and every SQLAlchemy exception becomes a baepo
error (StateError for conflicts, NotFoundError, TransientError, ExternalError).

Analysis runs belong to a rollout (one per rollout and ``key``, enforced by a unique index);
their measurements are append-only and listed in id order.

Concurrency: writes of apps and rollouts compare-and-set the ``version`` column. Revision
numbers and event ids are assigned while holding a per app+env lock (an advisory lock on
PostgreSQL; SQLite's write transactions are serialised anyway), so numbers are gap-free and
events become visible in id order, which lets a reader follow them with ``after``. At most one
non-terminal rollout per app+env is also enforced by a partial unique index.
"""

from __future__ import annotations

import contextlib
import typing
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Engine
from sqlalchemy.orm import Session, sessionmaker

from baepo.core.model import (
    TERMINAL_PHASES,
    AnalysisPhase,
    AnalysisRun,
    ApiToken,
    App,
    AuditRecord,
    Backup,
    DeployLock,
    Event,
    GateRun,
    Measurement,
    Revision,
    Rollout,
    Secret,
    User,
    WebSession,
)
from baepo.core.ports import Lease
from baepo.errors import BaepoError, ConflictError, NotFoundError, StateError
from baepo.store import engine as store_engine
from baepo.store import lease as store_lease
from baepo.store import migrate, translate
from baepo.store.tables import (
    AnalysisRunRow,
    AppRow,
    AuditRow,
    BackupRow,
    EventRow,
    GateRunRow,
    LockRow,
    MeasurementRow,
    RevisionRow,
    RolloutRow,
    SecretRow,
    SessionRow,
    TokenRow,
    UserRow,
)

_TERMINAL = sorted(phase.value for phase in TERMINAL_PHASES)


class SqlStore:
    """Apps, revisions, rollouts, events, analysis runs and measurements in SQLite or
    PostgreSQL (see ``open_store``)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._read = sessionmaker(engine, expire_on_commit=False)
        self._write = sessionmaker(store_engine.write_engine(engine), expire_on_commit=False)

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
            if _rowcount(result) == 1:
                return values.to_record()
            found = session.get(AppRow, (app.app, app.env))
            if found is None:
                raise NotFoundError(f"{name} does not exist (saved with version {app.version})")
            raise _conflict(name, app.version, found.version)

    # -- revisions --------------------------------------------------------------------------

    def add_revision(self, revision: Revision) -> Revision:
        """Store a new revision with number = last + 1 (``revision.number`` is ignored)."""
        with self._writing(f"add a revision of {revision.app} in {revision.env}") as session:
            store_engine.lock(session.connection(), "revisions", revision.app, revision.env)
            last = session.scalar(
                sa.select(sa.func.max(RevisionRow.number)).where(
                    RevisionRow.app == revision.app, RevisionRow.env == revision.env
                )
            )
            row = RevisionRow.from_record(revision, number=(last or 0) + 1)
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
            if _rowcount(result) == 1:
                return row.to_record()
            found = session.get(RolloutRow, rollout.id)
            if found is None:
                raise NotFoundError(f"{name} does not exist")
            raise _conflict(name, rollout.version, found.version)

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

    # -- analysis runs and measurements ----------------------------------------------------

    def create_analysis_run(self, run: AnalysisRun) -> AnalysisRun:
        """Insert with a new ``id``. Raises StateError naming the key when the rollout already
        has a run with ``run.key``, NotFoundError when the rollout does not exist."""
        with self._writing(f"create analysis run {run.key!r}") as session:
            row = AnalysisRunRow.from_record(run)
            try:
                with session.begin_nested():
                    session.add(row)
                    session.flush()
            except sa_exc.IntegrityError as exc:
                raise _run_refused(session, run) from exc
            return row.to_record()

    def save_analysis_run(self, run: AnalysisRun) -> AnalysisRun:
        """Update every field of the run with ``run.id``; NotFoundError when there is none."""
        with self._writing(f"save analysis run {run.id}") as session:
            row = AnalysisRunRow(id=run.id)
            row.assign(run)
            values = {
                column.key: getattr(row, column.key)
                for column in sa.inspect(AnalysisRunRow).column_attrs
                if column.key != "id"
            }
            statement = sa.update(AnalysisRunRow).where(AnalysisRunRow.id == run.id).values(values)
            try:
                with session.begin_nested():
                    result = session.execute(statement)
            except sa_exc.IntegrityError as exc:
                raise _run_refused(session, run) from exc
            if _rowcount(result) != 1:
                raise NotFoundError(f"analysis run {run.id} does not exist")
            return row.to_record()

    def get_analysis_run(self, run_id: int) -> AnalysisRun:
        """Raises NotFoundError naming the run when it does not exist."""
        with self._reading("read an analysis run") as session:
            row = session.get(AnalysisRunRow, run_id)
            if row is None:
                raise NotFoundError(f"analysis run {run_id} does not exist")
            return row.to_record()

    def list_analysis_runs(
        self,
        app: str,
        env: str,
        *,
        rollout_id: int | None = None,
        revision: int | None = None,
        limit: int = 100,
    ) -> list[AnalysisRun]:
        """The newest ``limit`` runs of app+env (optionally of one rollout or revision),
        oldest first."""
        statement = (
            sa.select(AnalysisRunRow)
            .where(AnalysisRunRow.app == app, AnalysisRunRow.env == env)
            .order_by(AnalysisRunRow.id.desc())
            .limit(max(limit, 0))
        )
        if rollout_id is not None:
            statement = statement.where(AnalysisRunRow.rollout_id == rollout_id)
        if revision is not None:
            statement = statement.where(AnalysisRunRow.revision == revision)
        with self._reading("list analysis runs") as session:
            return [row.to_record() for row in session.scalars(statement)][::-1]

    def running_analysis_runs(self, rollout_id: int) -> list[AnalysisRun]:
        """The runs of the rollout still in phase RUNNING, oldest first."""
        statement = (
            sa.select(AnalysisRunRow)
            .where(AnalysisRunRow.rollout_id == rollout_id)
            .where(AnalysisRunRow.phase == AnalysisPhase.RUNNING.value)
            .order_by(AnalysisRunRow.id)
        )
        with self._reading("list running analysis runs") as session:
            return [row.to_record() for row in session.scalars(statement)]

    def add_measurement(self, measurement: Measurement) -> Measurement:
        """Append; returns the measurement with its ``id``. NotFoundError if the run is missing."""
        name = f"{measurement.template}/{measurement.metric}"
        with self._writing(f"record a measurement of {name}") as session:
            row = MeasurementRow.from_record(measurement)
            session.add(row)
            try:
                session.flush()
            except sa_exc.IntegrityError as exc:
                raise NotFoundError(
                    f"cannot record a measurement of {name}: analysis run {measurement.run_id} "
                    "does not exist"
                ) from exc
            return row.to_record()

    def list_measurements(self, run_id: int, *, limit: int = 1000) -> list[Measurement]:
        """The newest ``limit`` measurements of the run, oldest first."""
        statement = (
            sa.select(MeasurementRow)
            .where(MeasurementRow.run_id == run_id)
            .order_by(MeasurementRow.id.desc())
            .limit(max(limit, 0))
        )
        with self._reading("list measurements") as session:
            return [row.to_record() for row in session.scalars(statement)][::-1]

    # -- tokens and audit -------------------------------------------------------------------

    def add_token(self, token: ApiToken) -> ApiToken:
        """Insert a token; StateError when its id is taken."""
        with self._writing(f"add token {token.name!r}") as session:
            session.add(TokenRow.from_record(token))
            try:
                session.flush()
            except sa_exc.IntegrityError as exc:
                raise StateError(f"a token with id {token.id} already exists") from exc
            return token

    def get_token(self, token_id: str) -> ApiToken | None:
        with self._reading("read a token") as session:
            row = session.get(TokenRow, token_id)
            return None if row is None else row.to_record()

    def save_token(self, token: ApiToken) -> ApiToken:
        """Update a token (revocation, last use); NotFoundError when it does not exist."""
        with self._writing(f"save token {token.id}") as session:
            row = session.get(TokenRow, token.id)
            if row is None:
                raise NotFoundError(f"no token {token.id}", hint="list them with baepo token list")
            row.assign(token)
            return row.to_record()

    def list_tokens(self) -> list[ApiToken]:
        """Every token, revoked ones too, oldest first."""
        statement = sa.select(TokenRow).order_by(TokenRow.created_at, TokenRow.id)
        with self._reading("list tokens") as session:
            return [row.to_record() for row in session.scalars(statement)]

    def append_audit(self, record: AuditRecord) -> AuditRecord:
        """Append; returns the record with its ``id``."""
        with self._writing("append to the audit log") as session:
            row = AuditRow.from_record(record)
            session.add(row)
            session.flush()
            return row.to_record()

    def list_audit(
        self,
        *,
        after: int = 0,
        limit: int = 200,
        app: str | None = None,
        env: str | None = None,
    ) -> list[AuditRecord]:
        """Audit records with id > ``after`` (optionally of one app or environment), the
        oldest ``limit`` of them, oldest first."""
        statement = sa.select(AuditRow).where(AuditRow.id > after).order_by(AuditRow.id)
        if app is not None:
            statement = statement.where(AuditRow.app == app)
        if env is not None:
            statement = statement.where(AuditRow.env == env)
        with self._reading("list the audit log") as session:
            return [row.to_record() for row in session.scalars(statement.limit(max(limit, 0)))]

    # -- dashboard users and sessions -------------------------------------------------------

    def add_user(self, user: User) -> User:
        """Insert a user; StateError when the username is taken."""
        with self._writing(f"add user {user.username!r}") as session:
            session.add(UserRow.from_record(user))
            try:
                session.flush()
            except sa_exc.IntegrityError as exc:
                raise StateError(f"a user named {user.username} already exists") from exc
            return user

    def get_user(self, username: str) -> User | None:
        with self._reading("read a user") as session:
            row = session.get(UserRow, username)
            return None if row is None else row.to_record()

    def save_user(self, user: User) -> User:
        """Update a user (password, role, disabled); NotFoundError when it does not exist."""
        with self._writing(f"save user {user.username!r}") as session:
            row = session.get(UserRow, user.username)
            if row is None:
                raise NotFoundError(f"no user {user.username}")
            row.assign(user)
            return row.to_record()

    def list_users(self) -> list[User]:
        """Every user, disabled ones too, by username."""
        with self._reading("list users") as session:
            rows = session.scalars(sa.select(UserRow).order_by(UserRow.username))
            return [row.to_record() for row in rows]

    def add_session(self, web_session: WebSession) -> WebSession:
        """Insert a dashboard session; also deletes every expired one."""
        with self._writing("add a dashboard session") as session:
            expired = SessionRow.expires_at <= web_session.created_at
            session.execute(sa.delete(SessionRow).where(expired))
            session.add(SessionRow.from_record(web_session))
            return web_session

    def get_session(self, id_hash: str) -> WebSession | None:
        """The session with this id hash, expired or not (the caller checks)."""
        with self._reading("read a dashboard session") as session:
            row = session.get(SessionRow, id_hash)
            return None if row is None else row.to_record()

    def delete_session(self, id_hash: str) -> None:
        """Forget a session (logout); nothing happens when it is gone."""
        with self._writing("delete a dashboard session") as session:
            session.execute(sa.delete(SessionRow).where(SessionRow.id_hash == id_hash))

    # -- deploy locks -----------------------------------------------------------------------

    def get_lock(self, app: str, env: str) -> DeployLock | None:
        with self._reading("read a deploy lock") as session:
            row = session.get(LockRow, (app, env))
            return None if row is None else row.to_record()

    def add_lock(self, lock: DeployLock) -> DeployLock:
        """Take the lock of app+env; StateError naming the holder and since when if it is
        already held (by anyone, ``lock.holder`` included)."""
        with self._writing(f"lock {lock.app} in {lock.env}") as session:
            held = session.get(LockRow, (lock.app, lock.env))
            if held is None:
                session.add(LockRow.from_record(lock))
                if self._flush_unique(session):
                    return lock
                held = session.get(LockRow, (lock.app, lock.env))
            assert held is not None
            found = held.to_record()
            raise StateError(
                f"{lock.app} in {lock.env} is locked by {found.holder} since "
                f"{found.since:%Y-%m-%d %H:%M:%S} UTC"
                + (f": {found.reason}" if found.reason else ""),
                hint="ask them, or an admin can run baepo unlock",
            )

    def delete_lock(self, app: str, env: str) -> DeployLock | None:
        """Release the lock of app+env; returns what was released (None when unlocked)."""
        with self._writing(f"unlock {app} in {env}") as session:
            row = session.get(LockRow, (app, env))
            if row is None:
                return None
            found = row.to_record()
            session.delete(row)
            return found

    # -- secrets ----------------------------------------------------------------------------

    def put_secret(self, secret: Secret) -> Secret:
        """Insert or replace a secret; returns it with its new version (previous + 1, or 1)."""
        name = f"secret {secret.name} of {secret.app} in {secret.env}"
        with self._writing(f"store {name}") as session:
            store_engine.lock(session.connection(), "secrets", secret.app, secret.env)
            row = session.get(SecretRow, (secret.app, secret.env, secret.name))
            if row is None:
                row = SecretRow(app=secret.app, env=secret.env, name=secret.name)
                row.assign(secret, version=1)
                session.add(row)
            else:
                row.assign(secret, version=row.version + 1)
            session.flush()
            return row.to_record()

    def get_secret(self, app: str, env: str, name: str) -> Secret | None:
        with self._reading("read a secret") as session:
            row = session.get(SecretRow, (app, env, name))
            return None if row is None else row.to_record()

    def list_secrets(self, app: str, env: str) -> list[Secret]:
        """The secrets of app+env, by name."""
        statement = (
            sa.select(SecretRow)
            .where(SecretRow.app == app, SecretRow.env == env)
            .order_by(SecretRow.name)
        )
        with self._reading("list secrets") as session:
            return [row.to_record() for row in session.scalars(statement)]

    def delete_secret(self, app: str, env: str, name: str) -> bool:
        """Forget a secret; False when there was none."""
        with self._writing(f"delete secret {name} of {app} in {env}") as session:
            row = session.get(SecretRow, (app, env, name))
            if row is None:
                return False
            session.delete(row)
            return True

    # -- gate runs --------------------------------------------------------------------------

    def add_gate_run(self, run: GateRun) -> GateRun:
        """Insert with a new ``id``; NotFoundError when its rollout does not exist."""
        with self._writing(f"record {run.kind} {run.name!r}") as session:
            row = GateRunRow()
            row.assign(run)
            session.add(row)
            try:
                session.flush()
            except sa_exc.IntegrityError as exc:
                raise NotFoundError(
                    f"cannot record {run.kind} {run.name!r}: rollout {run.rollout_id} does not "
                    "exist"
                ) from exc
            return row.to_record()

    def save_gate_run(self, run: GateRun) -> GateRun:
        """Update every field of the run with ``run.id``; NotFoundError when there is none."""
        with self._writing(f"save gate run {run.id}") as session:
            row = session.get(GateRunRow, run.id)
            if row is None:
                raise NotFoundError(f"gate run {run.id} does not exist")
            row.assign(run)
            return row.to_record()

    def list_gate_runs(
        self,
        app: str,
        env: str,
        *,
        rollout_id: int | None = None,
        revision: int | None = None,
        kind: str | None = None,
        limit: int = 100,
    ) -> list[GateRun]:
        """The newest ``limit`` gate runs of app+env (optionally of one rollout, revision or
        kind), oldest first."""
        statement = (
            sa.select(GateRunRow)
            .where(GateRunRow.app == app, GateRunRow.env == env)
            .order_by(GateRunRow.id.desc())
            .limit(max(limit, 0))
        )
        if rollout_id is not None:
            statement = statement.where(GateRunRow.rollout_id == rollout_id)
        if revision is not None:
            statement = statement.where(GateRunRow.revision == revision)
        if kind is not None:
            statement = statement.where(GateRunRow.kind == kind)
        with self._reading("list gate runs") as session:
            return [row.to_record() for row in session.scalars(statement)][::-1]

    # -- backups ----------------------------------------------------------------------------

    def add_backup(self, backup: Backup) -> Backup:
        """Insert with a new ``id``."""
        with self._writing(f"record a backup of {backup.app} in {backup.env}") as session:
            row = BackupRow()
            row.assign(backup)
            session.add(row)
            session.flush()
            return row.to_record()

    def save_backup(self, backup: Backup) -> Backup:
        """Update every field of the backup with ``backup.id``; NotFoundError when none."""
        with self._writing(f"save backup {backup.id}") as session:
            row = session.get(BackupRow, backup.id)
            if row is None:
                raise NotFoundError(f"backup {backup.id} does not exist")
            row.assign(backup)
            return row.to_record()

    def get_backup(self, backup_id: int) -> Backup:
        """Raises NotFoundError naming the backup when it does not exist."""
        with self._reading("read a backup") as session:
            row = session.get(BackupRow, backup_id)
            if row is None:
                raise NotFoundError(
                    f"backup {backup_id} does not exist", hint="list them with baepo backup list"
                )
            return row.to_record()

    def list_backups(self, app: str, env: str, *, limit: int = 100) -> list[Backup]:
        """The newest ``limit`` backups of app+env, oldest first."""
        statement = (
            sa.select(BackupRow)
            .where(BackupRow.app == app, BackupRow.env == env)
            .order_by(BackupRow.id.desc())
            .limit(max(limit, 0))
        )
        with self._reading("list backups") as session:
            return [row.to_record() for row in session.scalars(statement)][::-1]

    def delete_backup(self, backup_id: int) -> None:
        """Forget a backup's record (its file is the caller's); nothing if it is gone."""
        with self._writing(f"delete backup {backup_id}") as session:
            session.execute(sa.delete(BackupRow).where(BackupRow.id == backup_id))

    # -- leadership -------------------------------------------------------------------------

    def lease(self, name: str, identity: str, *, ttl: float) -> Lease:
        """The leader lease ``name`` (see ``store.lease``); opens nothing until acquired."""
        return store_lease.open_lease(self._engine, name, identity, ttl=ttl)

    # -- transactions -----------------------------------------------------------------------

    def _reading(self, action: str) -> contextlib.AbstractContextManager[Session]:
        return _transaction(self._read, self._engine.url, action)

    def _writing(self, action: str) -> contextlib.AbstractContextManager[Session]:
        return _transaction(self._write, self._engine.url, action)

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

    @staticmethod
    def _flush_unique(session: Session) -> bool:
        """Flush pending inserts; False when a unique constraint refused them."""
        try:
            with session.begin_nested():
                session.flush()
        except sa_exc.IntegrityError:
            return False
        return True


@contextlib.contextmanager
def _transaction(factory: sessionmaker[Session], url: URL, action: str) -> Iterator[Session]:
    """One session in one transaction: committed on success, rolled back on any error."""
    with translate.errors(url, action), factory() as session, session.begin():
        yield session


def _rowcount(result: sa.Result[Any]) -> int:
    return typing.cast("sa.CursorResult[Any]", result).rowcount


def _conflict(name: str, expected: int, found: int) -> ConflictError:
    return ConflictError(
        f"{name} was changed concurrently: saved with version {expected}, stored version is "
        f"{found}",
        hint="read it again and retry",
    )


def _already_active(active: Rollout) -> StateError:
    return StateError(
        f"rollout {active.id} of {active.app} in {active.env} is still {active.phase.value}",
        hint="wait for it to finish, or promote or abort it first",
    )


def _run_refused(session: Session, run: AnalysisRun) -> BaepoError:
    """Why the database refused to store ``run``: a missing rollout or a taken key."""
    if session.get(RolloutRow, run.rollout_id) is None:
        return NotFoundError(
            f"cannot store analysis run {run.key!r}: rollout {run.rollout_id} does not exist"
        )
    return StateError(
        f"rollout {run.rollout_id} already has an analysis run with key {run.key!r}",
        hint="use another key, or save the existing run",
    )
