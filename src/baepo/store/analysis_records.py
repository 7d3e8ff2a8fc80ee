"""Analysis runs and their measurements: the part of ``SqlStore`` that stores them.

Analysis runs belong to a rollout (one per rollout and ``key``, enforced by a unique index);
their measurements are append-only and listed in id order.

Callers: ``store.repository`` (``SqlStore`` inherits it).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from baepo.core.model import (
    AnalysisPhase,
    AnalysisRun,
    Measurement,
)
from baepo.errors import BaepoError, NotFoundError, StateError
from baepo.store.analysis_tables import AnalysisRunRow, MeasurementRow
from baepo.store.tables import RolloutRow
from baepo.store.transactions import Transactions, rowcount


class AnalysisRecords(Transactions):
    """Analysis runs and their measurements."""

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
            if rowcount(result) != 1:
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
