"""``baepo secret set|list|get|rm``: secrets of an app in one environment.

A value is read from stdin or a file, never from an argument (arguments end up in shell
history and process lists), and is never printed: ``get`` shows metadata only.
Callers: ``cli.main`` registers the group.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import typer
from rich.console import Console
from rich.table import Table

from baepo.cli.context import EnvOpt, FileOpt, Output, OutputOpt, Project, StateOpt
from baepo.errors import ConfigError

out = Console(highlight=False, markup=False)
secret_app = typer.Typer(
    help="Secrets of the app in an environment, injected into its instances' environment. "
    "Values are stored encrypted and never shown.",
    no_args_is_help=True,
)

FromFileOpt = Annotated[
    Path | None,
    typer.Option("--from-file", help="Read the value from this file (else from stdin)."),
]
NameArg = Annotated[str, typer.Argument(help="The secret's name, as the spec's secrets: name it.")]


def _path(project: Project, name: str | None = None) -> str:
    base = f"/api/v1/apps/{quote(project.app)}/secrets"
    return f"{base}/{quote(name)}" if name else base


def _read_value(from_file: Path | None) -> str:
    if from_file is not None:
        try:
            value = from_file.read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read {from_file}: {exc.strerror or exc}") from exc
    else:
        if sys.stdin.isatty():
            print("value (end with Ctrl-D):", file=sys.stderr)
        value = sys.stdin.read()
    if value.endswith("\n"):
        value = value[:-1]
    if not value:
        raise ConfigError("the secret's value is empty", hint="pipe it in, or use --from-file")
    return value


def _print(result: Any, output: Output, text: str) -> None:
    if output == Output.json:
        print(json.dumps(result))
    else:
        out.print(text)


@secret_app.command("set")
def set_secret(
    name: NameArg,
    from_file: FromFileOpt = None,
    file: FileOpt = None,
    env: EnvOpt = None,
    state_dir: StateOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Set a secret from stdin (or --from-file); one final newline is dropped.

    Needs the deployer role in the environment. Running instances keep their value until
    they are replaced (the next deploy).

    Example: `printf %s "$DB_PASSWORD" | baepo secret set db-password -e production`
    """
    project = Project(file, env, state_dir)
    value = _read_value(from_file)
    result = project.client().post(_path(project, name), {"env": project.env, "value": value})
    _print(result, output, f"secret {name} set in {project.env} (version {result['version']})")


@secret_app.command("rotate")
def rotate_secret(
    name: NameArg,
    from_file: FromFileOpt = None,
    file: FileOpt = None,
    env: EnvOpt = None,
    state_dir: StateOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Set a secret from stdin (or --from-file), then roll out the stable config again so
    every instance runs with the new value (through the app's strategy, and its approval if
    the environment needs one). Needs the deployer role.

    Example: `printf %s "$NEW_PASSWORD" | baepo secret rotate db-password -e production`
    """
    project = Project(file, env, state_dir)
    value = _read_value(from_file)
    result = project.client().post(
        f"{_path(project, name)}/rotate", {"env": project.env, "value": value}
    )
    _print(result, output, f"secret {name} set; {result['message']}")


@secret_app.command("list")
def list_secrets(
    file: FileOpt = None,
    env: EnvOpt = None,
    state_dir: StateOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """List the secrets of the app in the environment: names and versions, never values."""
    project = Project(file, env, state_dir)
    result = project.client().get(_path(project), env=project.env)
    if output == Output.json:
        print(json.dumps(result))
        return
    if not result:
        out.print(f"no secrets for {project.app} in {project.env}")
        return
    table = Table("NAME", "VERSION", "UPDATED", "BY", box=None)
    for s in result:
        table.add_row(s["name"], str(s["version"]), s["updated_at"], s["updated_by"])
    out.print(table)


@secret_app.command("get")
def get_secret(
    name: NameArg,
    file: FileOpt = None,
    env: EnvOpt = None,
    state_dir: StateOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Show a secret's metadata only (version, when and by whom it was set): never its value,
    which no command or API returns."""
    project = Project(file, env, state_dir)
    s = project.client().get(_path(project, name), env=project.env)
    _print(
        s, output, f"{s['name']} version {s['version']}, set {s['updated_at']} by {s['updated_by']}"
    )


@secret_app.command("rm")
def remove_secret(
    name: NameArg,
    file: FileOpt = None,
    env: EnvOpt = None,
    state_dir: StateOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Delete a secret. Needs the deployer role; running instances keep their value."""
    project = Project(file, env, state_dir)
    query = urlencode({"env": project.env})
    result = project.client().delete(f"{_path(project, name)}?{query}")
    _print(result, output, f"secret {name} deleted from {project.env}")


def register(app: typer.Typer) -> None:
    app.add_typer(secret_app, name="secret", rich_help_panel="Release")
