"""``baepo migrate status|up|down``: the app's migration commands, run by the server.

Callers: ``cli.main`` adds the sub-app.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from baepo.cli.context import EnvOpt, FileOpt, Output, OutputOpt, Project, StateOpt
from baepo.errors import CommandFailed

out = Console(highlight=False, markup=False)
migrate = typer.Typer(
    help=(
        "Run the app's `migrate:` commands (those of the serving revision) on the server, "
        "with its environment. A deploy runs `migrate.up` by itself, before traffic shifts."
    ),
    no_args_is_help=True,
)
TargetOpt = Annotated[
    str | None,
    typer.Option("--target", help="The migration to go to: `{target}` in the command."),
]


def _run(action: str, target: str | None, file: FileOpt, env: str | None,
         state_dir: StateOpt, output: Output) -> None:  # fmt: skip
    result = Project(file, env, state_dir).act("migrate", output, action=action, target=target)
    if output == Output.text:
        if result["output"]:
            print(result["output"], end="" if result["output"].endswith("\n") else "\n")
        out.print(result["message"], style="" if result["passed"] else "red")
    if not result["passed"]:
        raise CommandFailed([f"migrate {action}"], result["exit_code"] or 1, "")


@migrate.command()
def status(
    file: FileOpt = None,
    env: EnvOpt = None,
    state_dir: StateOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Print the database's migration state (`migrate.status`). Example: `baepo migrate status`"""
    _run("status", None, file, env, state_dir, output)


@migrate.command()
def up(
    target: TargetOpt = None,
    file: FileOpt = None,
    env: EnvOpt = None,
    state_dir: StateOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Migrate up (`migrate.up`), to `--target` when given. Example: `baepo migrate up`"""
    _run("up", target, file, env, state_dir, output)


@migrate.command()
def down(
    target: TargetOpt = None,
    file: FileOpt = None,
    env: EnvOpt = None,
    state_dir: StateOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Migrate down (`migrate.down`), to `--target`; admins only, as it may drop data.

    Example: `baepo migrate down --target 3 -e staging`
    """
    _run("down", target, file, env, state_dir, output)
