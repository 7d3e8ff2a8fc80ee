"""``baepo lock`` and ``baepo unlock``: hold deploys of an app in one environment.

While an app+environment is locked, only the holder may deploy or undo there. Callers:
``cli.main`` registers them.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from baepo.cli.context import EnvOpt, FileOpt, Output, OutputOpt, Project, StateOpt, text_option

out = Console(highlight=False, markup=False)


def lock(
    reason: Annotated[
        str,
        typer.Option(
            "--reason", "-r", help="Why, shown to whoever tries to deploy.", callback=text_option
        ),
    ] = "",
    file: FileOpt = None,
    env: EnvOpt = None,
    state_dir: StateOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Lock deploys of the app in the environment: only you may deploy or undo until unlocked.

    Example: `baepo lock -e production --reason "database migration"`
    """
    result = Project(file, env, state_dir).act("lock", output, reason=reason)
    if output == Output.text:
        out.print(result["message"])


def unlock(
    force: Annotated[
        bool, typer.Option("--force", help="Release someone else's lock (needs admin).")
    ] = False,
    file: FileOpt = None,
    env: EnvOpt = None,
    state_dir: StateOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Release the deploy lock of the app in the environment.

    Example: `baepo unlock -e production`; `baepo unlock --force` for someone else's lock.
    """
    result = Project(file, env, state_dir).act("unlock", output, force=force)
    if output == Output.text:
        out.print(result["message"], style="" if result["changed"] else "dim")


def register(app: typer.Typer) -> None:
    for command in (lock, unlock):
        app.command(rich_help_panel="Release")(command)
