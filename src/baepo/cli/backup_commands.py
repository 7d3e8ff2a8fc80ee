"""``baepo backup list|create|restore``: the app's database backups, taken by the server.

Callers: ``cli.main`` adds the sub-app.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from baepo.cli.context import (
    EnvOpt,
    FileOpt,
    Output,
    OutputOpt,
    Project,
    StateOpt,
    text_option,
)
from baepo.errors import StateError

out = Console(highlight=False, markup=False)
backup = typer.Typer(
    help=(
        "Back up the app's database as the spec's `backup:` section says (SQLite, PostgreSQL "
        "or commands), list the backups and restore one."
    ),
    no_args_is_help=True,
)


def _spec_body(project: Project) -> dict[str, Any]:
    loaded = project.loaded
    return {"spec_yaml": loaded.text, "spec_name": loaded.path.name, "env": project.env}


def _timeout(project: Project) -> float:
    section = project.loaded.spec.backup
    return (section.timeout if section is not None else 600.0) + 60.0


@backup.command("list")
def list_(
    file: FileOpt = None,
    env: EnvOpt = None,
    state_dir: StateOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """List the backups of the app in the environment. Example: `baepo backup list -e prod`"""
    project = Project(file, env, state_dir)
    found = project.client().get(f"/api/v1/apps/{project.app}/backups", env=project.env)
    if output == Output.json:
        print(json.dumps(found))
        return
    if not found:
        out.print(f"no backups of {project.app} in {project.env}")
        return
    table = Table("id", "created", "kind", "status", "size", "by", "reason")
    for b in found:
        table.add_row(
            str(b["id"]),
            b["created_at"][:19],
            b["kind"],
            b["status"],
            str(b["size_bytes"]),
            b["created_by"],
            b["reason"] or (b["error"] or ""),
        )
    out.print(table)


@backup.command()
def create(
    reason: Annotated[
        str, typer.Option("--reason", "-r", help="Why, kept with it.", callback=text_option)
    ] = "",
    file: FileOpt = None,
    env: EnvOpt = None,
    state_dir: StateOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Take a backup of the app's database now. Example: `baepo backup create -r "before import"`"""
    project = Project(file, env, state_dir)
    client = project.spec_client()
    client.timeout = _timeout(project)
    result = client.post(
        f"/api/v1/apps/{project.app}/backups",
        {**_spec_body(project), "reason": reason},
    )
    if output == Output.json:
        print(json.dumps(result))
    else:
        out.print(result["message"])


@backup.command()
def restore(
    backup_id: Annotated[int, typer.Argument(metavar="ID", help="The backup to restore.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    file: FileOpt = None,
    env: EnvOpt = None,
    state_dir: StateOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Put a backup back into the live database: what changed since it was taken is lost.

    Asks first unless `--yes`; without a terminal, `--yes` is required.
    Example: `baepo backup restore 3 --yes`
    """
    project = Project(file, env, state_dir)
    if not yes:
        if not sys.stdin.isatty():
            raise StateError(
                f"restoring backup {backup_id} replaces the live database",
                hint="add --yes to confirm without a terminal",
            )
        question = f"Restore backup {backup_id} into {project.app}'s database in {project.env}?"
        if not typer.confirm(question):
            raise typer.Exit(1)
    client = project.spec_client()
    client.timeout = _timeout(project)
    result = client.post(
        f"/api/v1/apps/{project.app}/backups/{backup_id}/restore",
        {**_spec_body(project)},
    )
    if output == Output.json:
        print(json.dumps(result))
    else:
        out.print(result["message"])
