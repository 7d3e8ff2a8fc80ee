"""Rows of the release pipeline: deploy locks, secrets, gate runs and backups.

Callers: the record classes of ``SqlStore``; ``store.tables`` for the schema as a whole.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from baepo.core import model
from baepo.store.tables import NAME, Base, as_utc


def _utc_or_none(value: datetime | None, name: str) -> datetime | None:
    return None if value is None else as_utc(value, name)


class LockRow(Base):
    __tablename__ = "deploy_locks"

    app: Mapped[str] = mapped_column(NAME, primary_key=True)
    env: Mapped[str] = mapped_column(NAME, primary_key=True)
    holder: Mapped[str] = mapped_column(sa.String(256))
    reason: Mapped[str] = mapped_column(sa.Text)
    since: Mapped[datetime]

    @classmethod
    def from_record(cls, lock: model.DeployLock) -> LockRow:
        return cls(
            app=lock.app,
            env=lock.env,
            holder=lock.holder,
            reason=lock.reason,
            since=as_utc(lock.since, "since"),
        )

    def to_record(self) -> model.DeployLock:
        return model.DeployLock(
            app=self.app, env=self.env, holder=self.holder, reason=self.reason, since=self.since
        )


class SecretRow(Base):
    __tablename__ = "secrets"

    app: Mapped[str] = mapped_column(NAME, primary_key=True)
    env: Mapped[str] = mapped_column(NAME, primary_key=True)
    name: Mapped[str] = mapped_column(NAME, primary_key=True)
    ciphertext: Mapped[str] = mapped_column(sa.Text)
    version: Mapped[int]
    updated_at: Mapped[datetime]
    updated_by: Mapped[str] = mapped_column(sa.String(256))

    def assign(self, secret: model.Secret, version: int) -> None:
        self.ciphertext = secret.ciphertext
        self.version = version
        self.updated_at = as_utc(secret.updated_at, "updated_at")
        self.updated_by = secret.updated_by

    def to_record(self) -> model.Secret:
        return model.Secret(
            app=self.app,
            env=self.env,
            name=self.name,
            ciphertext=self.ciphertext,
            version=self.version,
            updated_at=self.updated_at,
            updated_by=self.updated_by,
        )


class GateRunRow(Base):
    __tablename__ = "gate_runs"
    __table_args__ = (
        sa.Index("ix_gate_runs_app_env_id", "app", "env", "id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    app: Mapped[str] = mapped_column(NAME)
    env: Mapped[str] = mapped_column(NAME)
    rollout_id: Mapped[int | None] = mapped_column(sa.ForeignKey("rollouts.id"))
    revision: Mapped[int | None]
    kind: Mapped[str] = mapped_column(sa.String(32))
    stage: Mapped[str] = mapped_column(sa.String(32))
    name: Mapped[str] = mapped_column(sa.String(256))
    phase: Mapped[str] = mapped_column(sa.String(32))
    actor: Mapped[str] = mapped_column(sa.String(256))
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    exit_code: Mapped[int | None]
    message: Mapped[str] = mapped_column(sa.Text)
    output: Mapped[str] = mapped_column(sa.Text)
    detail: Mapped[dict[str, Any]]

    def assign(self, run: model.GateRun) -> None:
        """Copy every field of ``run`` but ``id`` onto this row."""
        self.app = run.app
        self.env = run.env
        self.rollout_id = run.rollout_id
        self.revision = run.revision
        self.kind = run.kind
        self.stage = run.stage
        self.name = run.name
        self.phase = model.GatePhase(run.phase).value
        self.actor = run.actor
        self.started_at = as_utc(run.started_at, "started_at")
        self.finished_at = _utc_or_none(run.finished_at, "finished_at")
        self.exit_code = run.exit_code
        self.message = run.message
        self.output = run.output
        self.detail = run.detail

    def to_record(self) -> model.GateRun:
        return model.GateRun(
            id=self.id,
            app=self.app,
            env=self.env,
            rollout_id=self.rollout_id,
            revision=self.revision,
            kind=self.kind,
            stage=self.stage,
            name=self.name,
            phase=model.GatePhase(self.phase),
            actor=self.actor,
            started_at=self.started_at,
            finished_at=self.finished_at,
            exit_code=self.exit_code,
            message=self.message,
            output=self.output,
            detail=self.detail,
        )


class BackupRow(Base):
    __tablename__ = "backups"
    __table_args__ = (
        sa.Index("ix_backups_app_env_id", "app", "env", "id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    app: Mapped[str] = mapped_column(NAME)
    env: Mapped[str] = mapped_column(NAME)
    revision: Mapped[int | None]
    kind: Mapped[str] = mapped_column(sa.String(32))
    location: Mapped[str] = mapped_column(sa.Text)
    status: Mapped[str] = mapped_column(sa.String(32))
    size_bytes: Mapped[int] = mapped_column(sa.BigInteger)
    sha256: Mapped[str] = mapped_column(sa.String(64))
    reason: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(sa.String(256))
    detail: Mapped[dict[str, Any]]

    def assign(self, backup: model.Backup) -> None:
        """Copy every field of ``backup`` but ``id`` onto this row."""
        self.app = backup.app
        self.env = backup.env
        self.revision = backup.revision
        self.kind = backup.kind
        self.location = backup.location
        self.status = backup.status
        self.size_bytes = backup.size_bytes
        self.sha256 = backup.sha256
        self.reason = backup.reason
        self.created_at = as_utc(backup.created_at, "created_at")
        self.created_by = backup.created_by
        self.detail = backup.detail

    def to_record(self) -> model.Backup:
        return model.Backup(
            id=self.id,
            app=self.app,
            env=self.env,
            revision=self.revision,
            kind=self.kind,
            location=self.location,
            status=self.status,
            size_bytes=self.size_bytes,
            sha256=self.sha256,
            reason=self.reason,
            created_at=self.created_at,
            created_by=self.created_by,
            detail=self.detail,
        )
