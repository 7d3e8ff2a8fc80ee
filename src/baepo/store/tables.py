"""The tables: typed SQLAlchemy declarative models and their mapping to domain records.

Callers: ``store.repository`` (reads and writes rows, hands out domain records only) and the
Alembic ``env.py`` (``Base.metadata`` for autogenerate). The schema itself is created by the
migrations in ``migrations/versions``; a test checks that they agree with these models.

Timestamps are stored in UTC and always come back timezone-aware (UTC); a naive datetime is a
programming error and is refused. JSON columns are JSONB on PostgreSQL.

Measurement values and analysis summaries may hold NaN and infinities, which JSON cannot: they
are stored as the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` (wherever they occur in
lists and mapping values) and read back as floats, so those exact strings read back as floats
too. Numbers come back as JSON numbers of equal value, not always of the same Python type:
SQLite's numeric affinity turns a bare ``1.0`` into ``1``, and JSONB stores numbers as
``numeric`` (``1e300`` reads back as an int).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from baepo.core import model

NAME = sa.String(128)
"""App and environment names, strategies, event kinds, actors."""

JSON_OBJECT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

ACTIVE_ROLLOUT_WHERE = "phase NOT IN ({})".format(
    ", ".join(f"'{phase.value}'" for phase in sorted(model.TERMINAL_PHASES))
)
"""Rows of ``uq_rollouts_active``: a new terminal phase needs a migration of that index."""


NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
"""How NaN and the infinities are spelled in JSON columns (see the module docstring)."""


def to_json(value: Any) -> Any:
    """``value`` with every NaN and infinity replaced by its string (see ``NON_FINITE``)."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, list | tuple):
        return [to_json(item) for item in value]
    if isinstance(value, dict):
        return {key: to_json(item) for key, item in value.items()}
    return value


def from_json(value: Any) -> Any:
    """The inverse of ``to_json``: the strings of ``NON_FINITE`` become floats again."""
    if isinstance(value, str):
        return NON_FINITE.get(value, value)
    if isinstance(value, list):
        return [from_json(item) for item in value]
    if isinstance(value, dict):
        return {key: from_json(item) for key, item in value.items()}
    return value


def as_utc(value: datetime, field: str) -> datetime:
    """``value`` converted to UTC; raises ValueError naming ``field`` when it is naive."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{field} must be timezone-aware, got naive {value.isoformat()}")
    return value.astimezone(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime stored as UTC (``timestamptz`` on PostgreSQL)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        utc = as_utc(value, "timestamp")
        # SQLite has no time zones: store the naive UTC wall time.
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = sa.MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )
    type_annotation_map = {datetime: UtcDateTime(), dict[str, Any]: JSON_OBJECT}


class AppRow(Base):
    __tablename__ = "apps"

    app: Mapped[str] = mapped_column(NAME, primary_key=True)
    env: Mapped[str] = mapped_column(NAME, primary_key=True)
    state: Mapped[str] = mapped_column(sa.String(32))
    stable_revision: Mapped[int | None]
    updated_at: Mapped[datetime]
    version: Mapped[int]

    @classmethod
    def from_record(cls, app: model.App, version: int) -> AppRow:
        return cls(
            app=app.app,
            env=app.env,
            state=app.state.value,
            stable_revision=app.stable_revision,
            updated_at=as_utc(app.updated_at, "updated_at"),
            version=version,
        )

    def to_record(self) -> model.App:
        return model.App(
            app=self.app,
            env=self.env,
            state=model.AppState(self.state),
            stable_revision=self.stable_revision,
            updated_at=self.updated_at,
            version=self.version,
        )


class RevisionRow(Base):
    __tablename__ = "revisions"

    app: Mapped[str] = mapped_column(NAME, primary_key=True)
    env: Mapped[str] = mapped_column(NAME, primary_key=True)
    number: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    version: Mapped[str] = mapped_column(sa.String(256))
    config: Mapped[dict[str, Any]]
    config_hash: Mapped[str] = mapped_column(sa.String(64))
    spec_dir: Mapped[str] = mapped_column(sa.Text)
    created_by: Mapped[str] = mapped_column(sa.String(256))
    created_at: Mapped[datetime]
    message: Mapped[str] = mapped_column(sa.Text)
    origin: Mapped[str] = mapped_column(sa.String(64))
    source: Mapped[dict[str, Any] | None]
    secrets: Mapped[dict[str, Any] | None]

    @classmethod
    def from_record(cls, revision: model.Revision, number: int) -> RevisionRow:
        return cls(
            app=revision.app,
            env=revision.env,
            number=number,
            version=revision.version,
            config=revision.config,
            config_hash=revision.config_hash,
            spec_dir=revision.spec_dir,
            created_by=revision.created_by,
            created_at=as_utc(revision.created_at, "created_at"),
            message=revision.message,
            origin=revision.origin,
            source=revision.source,
            secrets=revision.secrets or None,
        )

    def to_record(self) -> model.Revision:
        return model.Revision(
            app=self.app,
            env=self.env,
            number=self.number,
            version=self.version,
            config=self.config,
            config_hash=self.config_hash,
            spec_dir=self.spec_dir,
            created_by=self.created_by,
            created_at=self.created_at,
            message=self.message,
            origin=self.origin,
            source=self.source,
            secrets=dict(self.secrets or {}),
        )


class RolloutRow(Base):
    __tablename__ = "rollouts"
    __table_args__ = (
        sa.Index("ix_rollouts_app_env_id", "app", "env", "id"),
        sa.Index(
            "uq_rollouts_active",
            "app",
            "env",
            unique=True,
            sqlite_where=sa.text(ACTIVE_ROLLOUT_WHERE),
            postgresql_where=sa.text(ACTIVE_ROLLOUT_WHERE),
        ),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    app: Mapped[str] = mapped_column(NAME)
    env: Mapped[str] = mapped_column(NAME)
    revision: Mapped[int]
    stable_revision: Mapped[int | None]
    strategy: Mapped[str] = mapped_column(NAME)
    phase: Mapped[str] = mapped_column(sa.String(32))
    message: Mapped[str] = mapped_column(sa.Text)
    started_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    status: Mapped[dict[str, Any]]
    version: Mapped[int]

    def assign(self, rollout: model.Rollout, version: int) -> None:
        """Copy every field of ``rollout`` but ``id`` onto this row."""
        self.app = rollout.app
        self.env = rollout.env
        self.revision = rollout.revision
        self.stable_revision = rollout.stable_revision
        self.strategy = rollout.strategy
        self.phase = model.RolloutPhase(rollout.phase).value
        self.message = rollout.message
        self.started_at = as_utc(rollout.started_at, "started_at")
        self.updated_at = as_utc(rollout.updated_at, "updated_at")
        finished = rollout.finished_at
        self.finished_at = None if finished is None else as_utc(finished, "finished_at")
        self.status = rollout.status
        self.version = version

    def to_record(self) -> model.Rollout:
        return model.Rollout(
            id=self.id,
            app=self.app,
            env=self.env,
            revision=self.revision,
            stable_revision=self.stable_revision,
            strategy=self.strategy,
            phase=model.RolloutPhase(self.phase),
            message=self.message,
            started_at=self.started_at,
            updated_at=self.updated_at,
            finished_at=self.finished_at,
            status=self.status,
            version=self.version,
        )


class EventRow(Base):
    __tablename__ = "events"
    __table_args__ = (
        sa.Index("ix_events_app_env_id", "app", "env", "id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    app: Mapped[str] = mapped_column(NAME)
    env: Mapped[str] = mapped_column(NAME)
    kind: Mapped[str] = mapped_column(NAME)
    message: Mapped[str] = mapped_column(sa.Text)
    at: Mapped[datetime]
    rollout_id: Mapped[int | None] = mapped_column(sa.ForeignKey("rollouts.id"))
    revision: Mapped[int | None]
    actor: Mapped[str] = mapped_column(sa.String(256))
    data: Mapped[dict[str, Any]]

    @classmethod
    def from_record(cls, event: model.Event) -> EventRow:
        return cls(
            app=event.app,
            env=event.env,
            kind=event.kind,
            message=event.message,
            at=as_utc(event.at, "at"),
            rollout_id=event.rollout_id,
            revision=event.revision,
            actor=event.actor,
            data=event.data,
        )

    def to_record(self) -> model.Event:
        return model.Event(
            id=self.id,
            app=self.app,
            env=self.env,
            kind=self.kind,
            message=self.message,
            at=self.at,
            rollout_id=self.rollout_id,
            revision=self.revision,
            actor=self.actor,
            data=self.data,
        )


class AnalysisRunRow(Base):
    __tablename__ = "analysis_runs"
    __table_args__ = (
        sa.Index("ix_analysis_runs_app_env_id", "app", "env", "id"),
        sa.Index("uq_analysis_runs_rollout_id_key", "rollout_id", "key", unique=True),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    app: Mapped[str] = mapped_column(NAME)
    env: Mapped[str] = mapped_column(NAME)
    rollout_id: Mapped[int] = mapped_column(sa.ForeignKey("rollouts.id"))
    revision: Mapped[int]
    baseline: Mapped[int | None]
    kind: Mapped[str] = mapped_column(NAME)
    key: Mapped[str] = mapped_column(NAME)
    templates: Mapped[list[str]] = mapped_column(JSON_OBJECT)
    phase: Mapped[str] = mapped_column(sa.String(32))
    message: Mapped[str] = mapped_column(sa.Text)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    metrics: Mapped[dict[str, Any]]

    @classmethod
    def from_record(cls, run: model.AnalysisRun) -> AnalysisRunRow:
        """A new row (no ``id``: the database assigns it)."""
        row = cls()
        row.assign(run)
        return row

    def assign(self, run: model.AnalysisRun) -> None:
        """Copy every field of ``run`` but ``id`` onto this row."""
        self.app = run.app
        self.env = run.env
        self.rollout_id = run.rollout_id
        self.revision = run.revision
        self.baseline = run.baseline
        self.kind = run.kind
        self.key = run.key
        self.templates = list(run.templates)
        self.phase = model.AnalysisPhase(run.phase).value
        self.message = run.message
        self.started_at = as_utc(run.started_at, "started_at")
        finished = run.finished_at
        self.finished_at = None if finished is None else as_utc(finished, "finished_at")
        self.metrics = to_json(run.metrics)

    def to_record(self) -> model.AnalysisRun:
        return model.AnalysisRun(
            id=self.id,
            app=self.app,
            env=self.env,
            rollout_id=self.rollout_id,
            revision=self.revision,
            baseline=self.baseline,
            kind=self.kind,
            key=self.key,
            templates=list(self.templates),
            phase=model.AnalysisPhase(self.phase),
            message=self.message,
            started_at=self.started_at,
            finished_at=self.finished_at,
            metrics=from_json(self.metrics),
        )


class MeasurementRow(Base):
    __tablename__ = "measurements"
    __table_args__ = (
        sa.Index("ix_measurements_run_id_id", "run_id", "id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(sa.ForeignKey("analysis_runs.id"))
    template: Mapped[str] = mapped_column(NAME)
    metric: Mapped[str] = mapped_column(NAME)
    phase: Mapped[str] = mapped_column(sa.String(32))
    value: Mapped[Any] = mapped_column(JSON_OBJECT, nullable=True)
    message: Mapped[str] = mapped_column(sa.Text)
    output: Mapped[str] = mapped_column(sa.Text)
    at: Mapped[datetime]

    @classmethod
    def from_record(cls, measurement: model.Measurement) -> MeasurementRow:
        """A new row (no ``id``: the database assigns it)."""
        return cls(
            run_id=measurement.run_id,
            template=measurement.template,
            metric=measurement.metric,
            phase=model.AnalysisPhase(measurement.phase).value,
            value=to_json(measurement.value),
            message=measurement.message,
            output=measurement.output,
            at=as_utc(measurement.at, "at"),
        )

    def to_record(self) -> model.Measurement:
        return model.Measurement(
            id=self.id,
            run_id=self.run_id,
            template=self.template,
            metric=self.metric,
            phase=model.AnalysisPhase(self.phase),
            value=from_json(self.value),
            message=self.message,
            output=self.output,
            at=self.at,
        )


class TokenRow(Base):
    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    name: Mapped[str] = mapped_column(NAME)
    role: Mapped[str] = mapped_column(sa.String(32))
    envs: Mapped[list[str]] = mapped_column(JSON_OBJECT)
    secret_hash: Mapped[str] = mapped_column(sa.String(128))
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(sa.String(256))
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]

    @classmethod
    def from_record(cls, token: model.ApiToken) -> TokenRow:
        row = cls(id=token.id)
        row.assign(token)
        return row

    def assign(self, token: model.ApiToken) -> None:
        self.name = token.name
        self.role = token.role
        self.envs = list(token.envs)
        self.secret_hash = token.secret_hash
        self.created_at = as_utc(token.created_at, "created_at")
        self.created_by = token.created_by
        self.expires_at = (
            None if token.expires_at is None else as_utc(token.expires_at, "expires_at")
        )
        self.revoked_at = (
            None if token.revoked_at is None else as_utc(token.revoked_at, "revoked_at")
        )
        self.last_used_at = (
            None if token.last_used_at is None else as_utc(token.last_used_at, "last_used_at")
        )

    def to_record(self) -> model.ApiToken:
        return model.ApiToken(
            id=self.id,
            name=self.name,
            role=self.role,
            envs=list(self.envs),
            secret_hash=self.secret_hash,
            created_at=self.created_at,
            created_by=self.created_by,
            expires_at=self.expires_at,
            revoked_at=self.revoked_at,
            last_used_at=self.last_used_at,
        )


class AuditRow(Base):
    __tablename__ = "audit"
    __table_args__ = (
        sa.Index("ix_audit_app_env_id", "app", "env", "id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(sa.String(256))
    role: Mapped[str] = mapped_column(sa.String(32))
    action: Mapped[str] = mapped_column(sa.String(256))
    source: Mapped[str] = mapped_column(sa.String(256))
    status: Mapped[int]
    app: Mapped[str | None] = mapped_column(NAME)
    env: Mapped[str | None] = mapped_column(NAME)
    detail: Mapped[str] = mapped_column(sa.Text)

    @classmethod
    def from_record(cls, record: model.AuditRecord) -> AuditRow:
        return cls(
            at=as_utc(record.at, "at"),
            actor=record.actor,
            role=record.role,
            action=record.action,
            source=record.source,
            status=record.status,
            app=record.app,
            env=record.env,
            detail=record.detail,
        )

    def to_record(self) -> model.AuditRecord:
        return model.AuditRecord(
            id=self.id,
            at=self.at,
            actor=self.actor,
            role=self.role,
            action=self.action,
            source=self.source,
            status=self.status,
            app=self.app,
            env=self.env,
            detail=self.detail,
        )


class UserRow(Base):
    __tablename__ = "users"

    username: Mapped[str] = mapped_column(NAME, primary_key=True)
    password_hash: Mapped[str] = mapped_column(sa.String(512))
    role: Mapped[str] = mapped_column(sa.String(32))
    envs: Mapped[list[str]] = mapped_column(JSON_OBJECT)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(sa.String(256))
    disabled: Mapped[bool]

    @classmethod
    def from_record(cls, user: model.User) -> UserRow:
        row = cls(username=user.username)
        row.assign(user)
        return row

    def assign(self, user: model.User) -> None:
        self.password_hash = user.password_hash
        self.role = user.role
        self.envs = list(user.envs)
        self.created_at = as_utc(user.created_at, "created_at")
        self.created_by = user.created_by
        self.disabled = user.disabled

    def to_record(self) -> model.User:
        return model.User(
            username=self.username,
            password_hash=self.password_hash,
            role=self.role,
            envs=list(self.envs),
            created_at=self.created_at,
            created_by=self.created_by,
            disabled=self.disabled,
        )


class SessionRow(Base):
    __tablename__ = "web_sessions"
    __table_args__ = (sa.Index("ix_web_sessions_expires_at", "expires_at"),)

    id_hash: Mapped[str] = mapped_column(sa.String(128), primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(16))
    subject: Mapped[str] = mapped_column(NAME)
    csrf: Mapped[str] = mapped_column(sa.String(128))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]

    @classmethod
    def from_record(cls, session: model.WebSession) -> SessionRow:
        return cls(
            id_hash=session.id_hash,
            kind=session.kind,
            subject=session.subject,
            csrf=session.csrf,
            created_at=as_utc(session.created_at, "created_at"),
            expires_at=as_utc(session.expires_at, "expires_at"),
        )

    def to_record(self) -> model.WebSession:
        return model.WebSession(
            id_hash=self.id_hash,
            kind=self.kind,
            subject=self.subject,
            csrf=self.csrf,
            created_at=self.created_at,
            expires_at=self.expires_at,
        )


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
