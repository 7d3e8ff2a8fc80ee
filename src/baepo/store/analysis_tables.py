"""Rows of analysis runs and their measurements (NaN and infinities kept, see
``store.tables``).

Callers: the record classes of ``SqlStore``; ``store.tables`` for the schema as a whole.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from baepo.core import model
from baepo.store.tables import JSON_OBJECT, NAME, Base, as_utc, from_json, to_json


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
