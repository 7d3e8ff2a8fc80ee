"""Commands that show state: ``status``, ``history``, ``analysis``, ``logs``.

Callers: ``cli.main`` registers them.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from baepo.cli.context import EnvOpt, FileOpt, Output, OutputOpt, Project, StateOpt
from baepo.cli.follow import follow
from baepo.cli.render import (
    analysis_view,
    config_diff,
    history_table,
    rollout_outcome_text,
    secret_changes_text,
    status_view,
)

if TYPE_CHECKING:
    from baepo.cli.client import Client

out = Console(highlight=False, markup=False)
err = Console(stderr=True, highlight=False, markup=False, soft_wrap=True)
# the phases of a rollout whose revision's output ``baepo logs`` shows by default
FAILED_PHASES = frozenset({"failed", "rolled_back", "aborted"})


def status(
    file: FileOpt = None,
    env: EnvOpt = None,
    watch: Annotated[
        bool, typer.Option("--watch", "-w", help="Keep redrawing until Ctrl-C.")
    ] = False,
    state_dir: StateOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Show the app now: stable revision, rollout in progress, instances, traffic, events.

    With `--watch` the view is redrawn in place until Ctrl-C (with `-o json`: one JSON
    document per second, a line each).
    Example: `baepo status --watch` while a deploy runs elsewhere; `baepo status -o json | jq`.
    """
    project = Project(file, env, state_dir)
    client = project.client()
    if watch and output == Output.json:
        while True:  # one JSON document per line, as the status changes, until Ctrl-C
            print(
                json.dumps(client.get(f"/api/v1/apps/{project.app}", env=project.env)), flush=True
            )
            time.sleep(1.0)
    if watch:
        follow(
            client, project.app, project.env, out, done=lambda _: False, timeout=None,
            live=sys.stdout.isatty(),
        )  # fmt: skip
        return
    current = client.get(f"/api/v1/apps/{project.app}", env=project.env)
    if output == Output.json:
        print(json.dumps(current, indent=2))
    else:
        out.print(status_view(current))


def history(
    revision: Annotated[
        int | None, typer.Argument(help="Show this revision and its diff to the previous one.")
    ] = None,
    file: FileOpt = None,
    env: EnvOpt = None,
    state_dir: StateOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """List every revision with its outcome, duration, who/why and the cause of a failure; or
    one revision: its outcome, the cause with its evidence, and its diff.

    Example: `baepo history`, `baepo history 4`
    """
    project = Project(file, env, state_dir)
    client = project.client()
    if revision is None:
        revisions = client.get(f"/api/v1/apps/{project.app}/revisions", env=project.env)
        if output == Output.json:
            print(json.dumps(revisions, indent=2))
        elif not revisions:
            out.print(f"{project.app} has no revisions in {project.env} yet")
        else:
            out.print(history_table(revisions))
        return
    one = client.get(f"/api/v1/apps/{project.app}/revisions/{revision}", env=project.env)
    if output == Output.json:
        print(json.dumps(one, indent=2))
        return
    _show_revision(one)


def _show_revision(one: dict[str, Any]) -> None:
    import yaml  # here, not at every CLI start (as rich.syntax, with pygments)
    from rich.syntax import Syntax

    out.print(
        Text.assemble(
            (f"revision {one['number']}", "bold"),
            f"  version {one['version']}  by {one['created_by']}  "
            f"at {one['created_at'][:19]}  ({one['origin']})",
        )
    )
    if one.get("message"):
        out.print(Text(f"  {one['message']}"))
    if one.get("rollout"):
        out.print(rollout_outcome_text(one["rollout"]))
    previous = one.get("previous")
    changes: dict[str, str] = one.get("secret_changes") or {}
    if changes:
        sources = {**(previous or {}).get("secrets", {}), **one["secrets"]}
        out.print("secrets:")
        out.print(secret_changes_text(changes, sources), end="")
    if previous is None:
        out.print(Syntax(yaml.safe_dump(one["config"], sort_keys=False), "yaml"))
        return
    diff = config_diff(
        previous["config"],
        one["config"],
        f"revision {previous['number']}",
        f"revision {one['number']}",
    )
    out.print(Syntax(diff, "diff") if diff else "(same config as the previous revision)")


def analysis(
    revision: Annotated[
        int | None,
        typer.Argument(
            help="Show the analysis runs against this revision (default: the latest rollout's)."
        ),
    ] = None,
    file: FileOpt = None,
    env: EnvOpt = None,
    state_dir: StateOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Show analysis runs: each metric's condition, measurements, and why the verdict.

    A verdict reads like `error_rate: 0.31 > 0.05 on 2 of 3 measurements; failure_limit 1
    exceeded → rollback`. Dry-run metrics are shown but never acted on.
    Example: `baepo analysis`, `baepo analysis 4 -o json`
    """
    project = Project(file, env, state_dir)
    runs = project.client().get(
        f"/api/v1/apps/{project.app}/analysis", env=project.env, revision=revision
    )
    if output == Output.json:
        print(json.dumps(runs, indent=2))
    elif not runs:
        which = f"revision {revision}" if revision else "the latest rollout"
        out.print(f"no analysis ran for {which} of {project.app} in {project.env}")
    else:
        out.print(analysis_view(runs))


def logs(
    revision: Annotated[
        int | None, typer.Option("--revision", "-r", help="Only this revision's instances.")
    ] = None,
    follow_: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines until Ctrl-C.")
    ] = False,
    tail: Annotated[int, typer.Option("--tail", "-n", help="Lines to show first.", min=0)] = 100,
    file: Annotated[
        Path | None, typer.Option("--file", help="The spec file (default: baepo.yaml here).")
    ] = None,
    env: EnvOpt = None,
    state_dir: StateOpt = None,
) -> None:
    """Print the app's instance output, each line prefixed with its instance.

    When the latest rollout failed, was rolled back or aborted, the output of its revision
    is shown (its instances may have stopped already; a note on stderr says so and how to see
    the others'); otherwise every instance's. Here `-f` means follow, as in `tail -f`; name
    the spec with `--file`.
    Example: `baepo logs`, `baepo logs -r 3 -f`
    """
    project = Project(file, env, state_dir)
    client = project.client()
    if revision is None:
        revision = _failed_revision(client, project, follow_)
    for line in client.stream_lines(
        f"/api/v1/apps/{project.app}/logs", env=project.env, revision=revision, tail=tail,
        follow=follow_,
    ):  # fmt: skip
        print(line, flush=True)


def _failed_revision(client: Client, project: Project, following: bool) -> int | None:
    """The revision of the latest rollout when it failed and nothing has run since: what
    ``baepo logs`` shows by default (not with ``-f``: following is for what runs now)."""
    current = client.get(f"/api/v1/apps/{project.app}", env=project.env)
    last = current.get("last_rollout")
    if current.get("rollout") or not last or last["phase"] not in FAILED_PHASES:
        return None
    number = last["revision"]
    words = f"rollout {last['id']} of revision {number} {last['phase'].replace('_', ' ')}"
    if following:
        err.print(f"note: {words}; its output: baepo logs -r {number}")
        return None
    stable = (current.get("stable") or {}).get("number")
    others = f"; the stable revision's: baepo logs -r {stable}" if stable else ""
    err.print(f"note: {words}: showing its output{others}")
    return int(number)


def register(app: typer.Typer) -> None:
    app.command(rich_help_panel="Observe")(status)
    app.command(rich_help_panel="Observe")(history)
    app.command(rich_help_panel="Observe")(analysis)
    app.command(rich_help_panel="Observe")(logs)
