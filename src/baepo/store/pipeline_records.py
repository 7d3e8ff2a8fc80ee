"""The release pipeline's records: deploy locks, encrypted secrets, gate runs and backups.

Callers: ``store.repository`` (``SqlStore`` inherits it).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from baepo.core.model import Backup, DeployLock, GateRun, Secret
from baepo.errors import NotFoundError, StateError
from baepo.store import engine as store_engine
from baepo.store.pipeline_tables import BackupRow, GateRunRow, LockRow, SecretRow
from baepo.store.transactions import Transactions


class PipelineRecords(Transactions):
    """Deploy locks, encrypted secrets, gate runs and backups."""

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

    def all_secrets(self) -> list[Secret]:
        """Every stored secret, by app, env and name (the server checks its key against them)."""
        statement = sa.select(SecretRow).order_by(SecretRow.app, SecretRow.env, SecretRow.name)
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
