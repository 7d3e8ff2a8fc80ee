"""Secret-looking ``run.env`` values of existing revisions are sealed (no schema change).

Revisions made before this revision keep values such as ``run.env.API_TOKEN`` in plaintext in
``config`` and ``source``. Each is sealed in place with the server's keyring (passed by
``store.migrate.upgrade`` as ``seal``), exactly as a deploy now seals it, so the instances
still run the same values; ``config_hash`` is taken again over the sealed config (its
fingerprints, not the value) and ``secrets`` gains the sealed variables' versions. Without a
``seal`` (a database opened without the key) a revision that needs sealing stops the
migration, changing nothing. Downgrading leaves the values sealed: the earlier baepo would
start instances with the sealed text, so a downgrade refuses when any value is sealed.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from baepo.core.model import config_hash
from baepo.errors import StateError
from baepo.spec import sensitive

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_OBJECT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
REVISIONS = sa.table(
    "revisions",
    sa.column("app", sa.String),
    sa.column("env", sa.String),
    sa.column("number", sa.Integer),
    sa.column("config", JSON_OBJECT),
    sa.column("config_hash", sa.String),
    sa.column("spec_dir", sa.Text),
    sa.column("source", JSON_OBJECT),
    sa.column("secrets", JSON_OBJECT),
)
KEY = (REVISIONS.c.app, REVISIONS.c.env, REVISIONS.c.number)


def _plaintext(data: dict[str, Any] | None) -> bool:
    if not data:
        return False
    return any(
        sensitive.is_secret_name(str(name)) and value is not None and not sensitive.is_sealed(value)
        for _, env in sensitive.env_sections(data)
        for name, value in env.items()
    )


def upgrade() -> None:
    alembic = op.get_context().config
    seal: Callable[[str], str] | None = alembic.attributes.get("seal") if alembic else None
    bind = op.get_bind()
    for row in bind.execute(sa.select(REVISIONS)).mappings():
        if not (_plaintext(row["config"]) or _plaintext(row["source"])):
            continue
        if seal is None:
            raise StateError(
                f"revision {row['number']} of {row['app']} in {row['env']} keeps "
                "secret-looking run.env values in plaintext; sealing them needs the secret key",
                hint="start baepo server on this database (it holds the key) to migrate it",
            )
        config = sensitive.seal_values(row["config"], seal)
        source = sensitive.seal_values(row["source"], seal) if row["source"] else row["source"]
        digest = config_hash({"config": sensitive.hash_view(config), "spec_dir": row["spec_dir"]})
        secrets = {**sensitive.sealed_versions(config), **(row["secrets"] or {})}
        where = sa.and_(*(column == row[column.name] for column in KEY))
        bind.execute(
            REVISIONS.update()
            .where(where)
            .values(config=config, source=source, config_hash=digest, secrets=secrets)
        )


def downgrade() -> None:
    bind = op.get_bind()
    for row in bind.execute(sa.select(REVISIONS)).mappings():
        if any(
            sensitive.is_sealed(v)
            for _, env in sensitive.env_sections(row["config"])
            for v in env.values()
        ):
            raise StateError(
                f"revision {row['number']} of {row['app']} in {row['env']} has sealed run.env "
                "values, which baepo before schema 0007 cannot open",
                hint="keep this baepo, or deploy specs with these values in secrets: first",
            )
