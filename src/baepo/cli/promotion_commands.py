"""``baepo promote-release``: deploy what passed in one environment to the next.

Callers: ``cli.main`` registers it.
"""

from __future__ import annotations

from typing import Annotated

import typer

from baepo.cli.context import (
    FileOpt,
    MessageOpt,
    Output,
    OutputOpt,
    Project,
    StateOpt,
    line_option,
    text_option,
)
from baepo.cli.release_commands import TimeoutOpt, WaitOpt
from baepo.cli.release_commands import _finish as finish


def promote_release(
    from_env: Annotated[
        str, typer.Option("--from", help="The environment where the release passed.")
    ],
    to_env: Annotated[str, typer.Option("--to", help="The environment to deploy it to.")],
    version: Annotated[
        str | None,
        typer.Option(
            "--version",
            help="Which version (default: the stable one of --from).",
            callback=line_option,
        ),
    ] = None,
    force: Annotated[
        str | None,
        typer.Option(
            "--force",
            help="Promote a release that has not passed, for this reason (admins only; audited).",
            metavar="REASON",
            callback=text_option,
        ),
    ] = None,
    message: MessageOpt = "",
    file: FileOpt = None,
    wait: WaitOpt = None,
    timeout: TimeoutOpt = None,
    state_dir: StateOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Deploy to `--to` exactly the version and spec that passed in `--from`.

    A release has passed in an environment when one of its rollouts there ended healthy. Its
    spec as written is resolved again for the target's overlay (replicas, approval...), so
    only what the overlays say differs. A release that has not passed is refused (exit 5).

    Example: `baepo promote-release --from staging --to production --wait`
    """
    project = Project(file, to_env, state_dir)
    result = project.client().post(
        f"/api/v1/apps/{project.app}/promote-release",
        {
            "from_env": from_env,
            "to_env": to_env,
            "version": version,
            "force": force,
            "message": message,
        },
    )
    finish(project, result, wait, timeout, output)


def register(app: typer.Typer) -> None:
    app.command("promote-release", rich_help_panel="Release")(promote_release)
