"""The release pipeline: deploy locks, encrypted secrets, gate runs (checks, hooks,
migrations, backups), backups, and the spec as written on each revision.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = sa.String(128)
ACTOR = sa.String(256)
JSON_OBJECT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("revisions") as batch:
        batch.add_column(sa.Column("source", JSON_OBJECT, nullable=True))
    op.create_table(
        "deploy_locks",
        sa.Column("app", NAME, nullable=False),
        sa.Column("env", NAME, nullable=False),
        sa.Column("holder", ACTOR, nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("since", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("app", "env", name="pk_deploy_locks"),
    )
    op.create_table(
        "secrets",
        sa.Column("app", NAME, nullable=False),
        sa.Column("env", NAME, nullable=False),
        sa.Column("name", NAME, nullable=False),
        sa.Column("ciphertext", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("updated_by", ACTOR, nullable=False),
        sa.PrimaryKeyConstraint("app", "env", "name", name="pk_secrets"),
    )
    op.create_table(
        "gate_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("app", NAME, nullable=False),
        sa.Column("env", NAME, nullable=False),
        sa.Column("rollout_id", sa.Integer(), nullable=True),
        sa.Column("revision", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("stage", sa.String(32), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("phase", sa.String(32), nullable=False),
        sa.Column("actor", ACTOR, nullable=False),
        sa.Column("started_at", TIMESTAMP, nullable=False),
        sa.Column("finished_at", TIMESTAMP, nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("output", sa.Text(), nullable=False),
        sa.Column("detail", JSON_OBJECT, nullable=False),
        sa.ForeignKeyConstraint(
            ["rollout_id"], ["rollouts.id"], name="fk_gate_runs_rollout_id_rollouts"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_gate_runs"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_gate_runs_app_env_id", "gate_runs", ["app", "env", "id"])
    op.create_table(
        "backups",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("app", NAME, nullable=False),
        sa.Column("env", NAME, nullable=False),
        sa.Column("revision", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("location", sa.Text(), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("created_by", ACTOR, nullable=False),
        sa.Column("detail", JSON_OBJECT, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_backups"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_backups_app_env_id", "backups", ["app", "env", "id"])


def downgrade() -> None:
    op.drop_index("ix_backups_app_env_id", table_name="backups")
    op.drop_table("backups")
    op.drop_index("ix_gate_runs_app_env_id", table_name="gate_runs")
    op.drop_table("gate_runs")
    op.drop_table("secrets")
    op.drop_table("deploy_locks")
    with op.batch_alter_table("revisions") as batch:
        batch.drop_column("source")
