"""Commands that steer a rollout in progress: promote, pause, resume, abort, retry.

Callers: ``cli.main`` registers them.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console

from baepo.cli.context import EnvOpt, FileOpt, Output, OutputOpt, Project, StateOpt
from baepo.cli.release_commands import TimeoutOpt
from baepo.cli.release_commands import _finish as finish

out = Console(highlight=False, markup=False)

SteerWaitOpt = Annotated[
    bool,
    typer.Option(
        "--wait",
        help="Then follow the rollout until it ends or waits for a person again; exit codes "
        "as `baepo deploy --wait` (0 healthy, 6 failed or rolled back, 8 paused).",
    ),
]


def _steer(
    verb: str,
    file: FileOpt,
    env: str | None,
    state_dir: StateOpt,
    output: Output,
    *,
    full: bool = False,
    wait: bool = False,
    timeout: float | None = None,
) -> None:
    project = Project(file, env, state_dir)
    result = project.client().post(
        f"/api/v1/apps/{project.app}/{verb}", {"env": project.env, "full": full}
    )
    if wait:
        finish(project, result, True, timeout, output)
    elif output == Output.json:
        print(json.dumps(result))
    else:
        out.print(result["message"], style="" if result["changed"] else "dim")


def promote(
    full: Annotated[
        bool, typer.Option("--full", help="Skip every remaining step and promote at once.")
    ] = False,
    file: FileOpt = None,
    env: EnvOpt = None,
    wait: SteerWaitOpt = False,
    timeout: TimeoutOpt = None,
    state_dir: StateOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Go past the current step of a canary or blue-green rollout (a pause, an analysis).

    Example: `baepo promote` at a pause; `baepo promote --full --wait` to finish now.
    """
    _steer("promote", file, env, state_dir, output, full=full, wait=wait, timeout=timeout)


def pause(
    file: FileOpt = None,
    env: EnvOpt = None,
    state_dir: StateOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Hold the rollout where it is: no scaling and no weight change until `baepo resume`.

    Example: `baepo pause`
    """
    _steer("pause", file, env, state_dir, output)


def resume(
    file: FileOpt = None,
    env: EnvOpt = None,
    wait: SteerWaitOpt = False,
    timeout: TimeoutOpt = None,
    state_dir: StateOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Continue a rollout held with `baepo pause`.

    Example: `baepo resume`
    """
    _steer("resume", file, env, state_dir, output, wait=wait, timeout=timeout)


def abort(
    file: FileOpt = None,
    env: EnvOpt = None,
    state_dir: StateOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Send all traffic back to the stable revision at once and stop the rollout.

    The new revision's instances stay up, unrouted, for `abort_scale_down_delay`, then stop.
    The app stays healthy on stable; `baepo retry` starts the rollout again.
    Example: `baepo abort`
    """
    _steer("abort", file, env, state_dir, output)


def retry(
    file: FileOpt = None,
    env: EnvOpt = None,
    wait: SteerWaitOpt = False,
    timeout: TimeoutOpt = None,
    state_dir: StateOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Start the last aborted or rolled back rollout again, from its first step.

    Example: `baepo retry --wait`
    """
    _steer("retry", file, env, state_dir, output, wait=wait, timeout=timeout)


def register(app: typer.Typer) -> None:
    for command in (promote, pause, resume, abort, retry):
        app.command(rich_help_panel="Steer a rollout")(command)
