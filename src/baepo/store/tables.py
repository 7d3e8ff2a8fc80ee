"""The tables: typed SQLAlchemy declarative models and their mapping to domain records.

The rows of apps, revisions, rollouts and events are here; the other rows are in
``analysis_tables``, ``access_tables`` and ``pipeline_tables``, which ``store`` imports, so
``Base.metadata`` holds every table once ``baepo.store`` is imported. Callers: the record
classes of ``SqlStore`` (they read and write rows and hand out domain records only) and the
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
    cause: Mapped[dict[str, Any] | None]

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
        self.cause = None if rollout.cause is None else rollout.cause.to_json()

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
            cause=model.Cause.from_json(self.cause),
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
