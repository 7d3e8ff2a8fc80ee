"""Initial schema: apps, revisions, rollouts (one active per app+env) and events.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = sa.String(128)
JSON_OBJECT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TIMESTAMP = sa.DateTime(timezone=True)

TERMINAL_PHASES = ("aborted", "failed", "healthy", "rolled_back", "superseded")
ACTIVE_ROLLOUT_WHERE = "phase NOT IN ({})".format(", ".join(f"'{p}'" for p in TERMINAL_PHASES))


def upgrade() -> None:
    op.create_table(
        "apps",
        sa.Column("app", NAME, nullable=False),
        sa.Column("env", NAME, nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("stable_revision", sa.Integer(), nullable=True),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("app", "env", name="pk_apps"),
    )
    op.create_table(
        "revisions",
        sa.Column("app", NAME, nullable=False),
        sa.Column("env", NAME, nullable=False),
        sa.Column("number", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("version", sa.String(256), nullable=False),
        sa.Column("config", JSON_OBJECT, nullable=False),
        sa.Column("config_hash", sa.String(64), nullable=False),
        sa.Column("spec_dir", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(256), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("origin", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("app", "env", "number", name="pk_revisions"),
    )
    op.create_table(
        "rollouts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("app", NAME, nullable=False),
        sa.Column("env", NAME, nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("stable_revision", sa.Integer(), nullable=True),
        sa.Column("strategy", NAME, nullable=False),
        sa.Column("phase", sa.String(32), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("started_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("finished_at", TIMESTAMP, nullable=True),
        sa.Column("status", JSON_OBJECT, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_rollouts"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_rollouts_app_env_id", "rollouts", ["app", "env", "id"])
    op.create_index(
        "uq_rollouts_active",
        "rollouts",
        ["app", "env"],
        unique=True,
        sqlite_where=sa.text(ACTIVE_ROLLOUT_WHERE),
        postgresql_where=sa.text(ACTIVE_ROLLOUT_WHERE),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("app", NAME, nullable=False),
        sa.Column("env", NAME, nullable=False),
        sa.Column("kind", NAME, nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.Column("rollout_id", sa.Integer(), nullable=True),
        sa.Column("revision", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("data", JSON_OBJECT, nullable=False),
        sa.ForeignKeyConstraint(
            ["rollout_id"], ["rollouts.id"], name="fk_events_rollout_id_rollouts"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_events_app_env_id", "events", ["app", "env", "id"])


def downgrade() -> None:
    op.drop_index("ix_events_app_env_id", table_name="events")
    op.drop_table("events")
    op.drop_index("uq_rollouts_active", table_name="rollouts")
    op.drop_index("ix_rollouts_app_env_id", table_name="rollouts")
    op.drop_table("rollouts")
    op.drop_table("revisions")
    op.drop_table("apps")
