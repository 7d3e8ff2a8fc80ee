"""``baepo hosts plan``: what a deploy to ``target: hosts`` would run on which host, as text.

Nothing is run and no server is needed: the plan is built from the spec file alone by the same
functions the hosts platform runs (``controller.preview``, over ``platforms.hosts.plan``).
``baepo deploy --dry-run`` shows the same plan, with the revision number the server would
give. Callers: ``cli.main`` registers it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from baepo.cli.context import EnvOpt, FileOpt, Project
from baepo.errors import ConfigError, Problem

hosts = typer.Typer(help="Apps on SSH hosts (`target: hosts`).", no_args_is_help=True)


@hosts.command()
def plan(
    file: FileOpt = None,
    env: EnvOpt = None,
    revision: Annotated[
        int, typer.Option("--revision", min=1, help="The revision number to show.")
    ] = 1,
) -> None:
    """Print every command and upload a deploy of the spec runs, host by host, then where
    each replica starts. Secrets are shown redacted; nothing runs.
    Example: `baepo hosts plan --env production`.
    """
    # the spec's models and the hosts platform: imported here, not at every CLI start
    from baepo.core.model import Revision, config_hash
    from baepo.spec.loader import load_spec

    project = Project(file, env, None)
    loaded = load_spec(project.path, env=project.env)
    spec = loaded.spec
    if spec.target.kind != "hosts":
        raise ConfigError(
            f"{loaded.path}: the app runs on this machine",
            problems=[Problem("target.kind", "`baepo hosts plan` needs `kind: hosts`")],
        )
    config = spec.model_dump(mode="json")
    revision_ = Revision(
        app=spec.app,
        env=project.env,
        number=revision,
        version=spec.version or "",
        config=config,
        config_hash=config_hash(config),
        spec_dir=str(loaded.directory),
        created_by="plan",
        created_at=datetime.now(UTC),
    )
    from baepo.controller import preview  # the hosts platform and asyncssh: only here

    for line in preview.hosts_plan_lines(revision_, spec):
        print(line)
