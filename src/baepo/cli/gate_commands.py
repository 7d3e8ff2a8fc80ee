"""``baepo gates``: the checks, hooks and migrations of a rollout, with their results.

Callers: ``cli.main`` registers it.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from baepo.cli.context import EnvOpt, FileOpt, Output, OutputOpt, Project, StateOpt

out = Console(highlight=False, markup=False)


def gates(
    revision: Annotated[
        int | None, typer.Argument(help="Runs against this revision (default: latest rollout).")
    ] = None,
    output_lines: Annotated[
        int, typer.Option("--output-lines", help="Lines of each run's output to show.", min=0)
    ] = 5,
    file: FileOpt = None,
    env: EnvOpt = None,
    state_dir: StateOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Show the gates that ran: `checks.before`/`after`, hooks and migrations, each with its
    result, exit code and the end of its output.

    Example: `baepo gates` or `baepo gates 7 -o json`
    """
    project = Project(file, env, state_dir)
    runs = project.client().get(
        f"/api/v1/apps/{project.app}/gates", env=project.env, revision=revision
    )
    if output == Output.json:
        print(json.dumps(runs))
        return
    if not runs:
        out.print(f"no gates ran for {project.app} in {project.env}", style="dim")
        return
    for run in runs:
        style = {"passed": "green", "failed": "red"}.get(run["phase"], "")
        out.print(
            Text.assemble(
                f"revision {run['revision']}  {run['kind']} {run['stage']}  {run['name']}  ",
                (run["phase"], style),
                f"  {run['message']}",
            )
        )
        tail = run["output"].rstrip().splitlines()[-output_lines:] if output_lines else []
        for line in tail:
            out.print(f"    {line}", markup=False, style="dim")


def register(app: typer.Typer) -> None:
    app.command(rich_help_panel="Observe")(gates)
