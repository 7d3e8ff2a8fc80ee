"""``baepo approve`` and ``baepo reject``: decide on a deploy waiting for approval.

Callers: ``cli.main`` registers them.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from baepo.cli.context import EnvOpt, FileOpt, Output, OutputOpt, Project, StateOpt, text_option
from baepo.cli.release_commands import TimeoutOpt
from baepo.cli.release_commands import _finish as finish
from baepo.cli.steer_commands import SteerWaitOpt

out = Console(highlight=False, markup=False)

ReasonOpt = Annotated[
    str, typer.Option("--reason", "-r", help="Why, for the history.", callback=text_option)
]


def _decide(verb: str, reason: str, file: FileOpt, env: str | None, state_dir: StateOpt,
            output: Output) -> None:  # fmt: skip
    result = Project(file, env, state_dir).act(verb, output, reason=reason)
    if output == Output.text:
        out.print(result["message"])


def approve(
    reason: ReasonOpt = "",
    file: FileOpt = None,
    env: EnvOpt = None,
    wait: SteerWaitOpt = False,
    timeout: TimeoutOpt = None,
    state_dir: StateOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Approve the deploy waiting in `awaiting_approval`: it starts rolling out.

    Needs the approver role in the environment. Whoever asked for the deploy may not approve
    it, unless the environment's `approval: {allow_self_approval: true}`.

    Example: `baepo approve -e production --reason "checked the release notes" --wait`
    """
    if not wait:
        _decide("approve", reason, file, env, state_dir, output)
        return
    project = Project(file, env, state_dir)
    result = project.client().post(
        f"/api/v1/apps/{project.app}/approve", {"env": project.env, "reason": reason}
    )
    finish(project, result, True, timeout, output)


def reject(
    reason: Annotated[
        str, typer.Option("--reason", "-r", help="Why (required).", callback=text_option)
    ],
    file: FileOpt = None,
    env: EnvOpt = None,
    state_dir: StateOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Reject the deploy waiting in `awaiting_approval`: it ends without running anything.

    Example: `baepo reject -e production --reason "not during the sale"`
    """
    _decide("reject", reason, file, env, state_dir, output)


def register(app: typer.Typer) -> None:
    app.command(rich_help_panel="Steer a rollout")(approve)
    app.command(rich_help_panel="Steer a rollout")(reject)
