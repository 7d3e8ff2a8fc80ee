"""How to back up an app's database before it changes.

Callers: ``spec.models`` (the ``backup`` field); the controller and ``baepo backup`` use it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from baepo.spec.base import SpecModel
from baepo.spec.units import Duration


class BackupSpec(SpecModel):
    """A database backup: built in for SQLite and PostgreSQL, or custom commands."""

    kind: Literal["sqlite", "postgres", "command"] = Field(
        description=(
            "`sqlite`: a consistent copy of the file at `path`; `postgres`: `pg_dump` of the "
            "database at the URL in `url_env`; `command`: the `create` and `restore` commands."
        )
    )
    path: str | None = Field(
        default=None, description="`sqlite`: the database file, relative to the spec's folder."
    )
    url_env: str | None = Field(
        default=None,
        description="`postgres`: the environment variable (or secret) holding the database URL.",
    )
    create: list[str] | None = Field(
        default=None,
        description="`command`: writes a backup to the file named by `BAEPO_BACKUP_FILE`.",
    )
    restore: list[str] | None = Field(
        default=None,
        description="`command`: restores the backup in the file named by `BAEPO_BACKUP_FILE`.",
    )
    before_migrate: bool = Field(
        default=False, description="Take a backup before every automatic migration."
    )
    dir: str | None = Field(
        default=None,
        description="Where backups are written. Default: `backups/` under baepo's state folder.",
    )
    keep: int = Field(default=10, ge=1, le=1000, description="How many backups of app+env to keep.")
    timeout: Duration = Field(default=600.0, description="How long one backup may take.")
