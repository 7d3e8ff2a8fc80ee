"""The ``baepo`` command: the Typer app, and the one place errors become a line and an exit code.

Exit codes: 0 success; 1 unexpected error; 2 bad input (spec, arguments, bodies); 4 not found;
5 conflicts with the current state (e.g. a rollout in progress); 6 the rollout failed, was
rolled back or aborted; 7 something outside baepo failed (a process, the server), or
``--timeout`` ran out; 8 ``--wait`` returned because the rollout waits for a person (a pause
until ``baepo promote``, an approval).
Callers: the ``baepo`` console script and ``python -m baepo``.
"""

from __future__ import annotations

import os
import sys

import typer
from rich.console import Console
from rich.text import Text

from baepo import __version__
from baepo.errors import BaepoError, ConfigError

app = typer.Typer(
    name="baepo",
    help=(
        "Safe, zero-downtime, reversible releases of web services.\n\n"
        "Start with `baepo init`, then `baepo deploy --wait`. Every command reads baepo.yaml "
        "in the current folder unless given -f FILE.\n\n"
        "Exit codes: 0 done; 2 bad input; 3 not allowed; 4 not found; 5 conflicts with the "
        "current state; 6 the rollout failed, was rolled back or aborted; 7 something outside "
        "baepo failed, or --timeout ran out; 8 --wait returned at a pause that waits for a "
        "person (`baepo promote`, `baepo approve`)."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
err = Console(stderr=True, markup=False)


def _version(value: bool) -> None:
    if value:
        print(f"baepo {__version__}")
        raise typer.Exit


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Show tracebacks for errors.", envvar="BAEPO_VERBOSE"
    ),
) -> None:
    if verbose:
        os.environ["BAEPO_VERBOSE"] = "1"


def _register() -> None:
    from baepo.cli import (
        approval_commands,
        auth_commands,
        backup_commands,
        demo,
        gate_commands,
        hosts_commands,
        lock_commands,
        migrate_commands,
        promotion_commands,
        release_commands,
        report_commands,
        secret_commands,
        server_commands,
        spec_commands,
        steer_commands,
        user_commands,
        view_commands,
    )

    for module in (
        spec_commands,
        release_commands,
        promotion_commands,
        steer_commands,
        lock_commands,
        approval_commands,
        secret_commands,
        view_commands,
        gate_commands,
        report_commands,
        auth_commands,
        user_commands,
        server_commands,
        demo,
    ):
        module.register(app)
    app.add_typer(server_commands.server, name="server", rich_help_panel="Server")
    app.add_typer(migrate_commands.migrate, name="migrate", rich_help_panel="Release")
    app.add_typer(backup_commands.backup, name="backup", rich_help_panel="Release")
    app.add_typer(hosts_commands.hosts, name="hosts", rich_help_panel="Release")


def report(exc: BaepoError) -> int:
    """Print ``exc`` as one line (plus located problems and a hint); return its exit code."""
    style = "bold red" if exc.label == "error" else "bold yellow"
    err.print(Text.assemble((f"{exc.label}:", style), f" {exc.message}"), highlight=False)
    if isinstance(exc, ConfigError):
        for problem in exc.problems:
            err.print(f"  {problem.render()}", highlight=False, markup=False)
    if exc.hint:
        err.print(Text(f"hint: {exc.hint}", style="dim"), highlight=False)
    return exc.exit_code


def run() -> None:
    """Console-script entry point."""
    _register()
    try:
        app()
    except BaepoError as exc:
        if os.environ.get("BAEPO_VERBOSE"):
            raise
        sys.exit(report(exc))
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
