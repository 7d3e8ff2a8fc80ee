"""Commands that change what runs: ``deploy``, ``undo`` (alias ``rollback``), ``down``.

Each sends one request to the server, then (with ``--wait``, the default on a terminal) follows
the work to its end and exits 0 when it succeeded, 6 when it failed, was rolled back or
aborted (the last lines are the rollout's message and cause), 8 when it waits for a person
(an indefinite pause, an approval: the lines say which command goes on).
Callers: ``cli.main`` registers them.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from baepo.cli.context import (
    EnvOpt,
    FileOpt,
    MessageOpt,
    Output,
    OutputOpt,
    Project,
    StateOpt,
    line_option,
    text_option,
)
from baepo.cli.follow import RolloutWatch, follow, settled
from baepo.cli.render import cause_text, preview_view
from baepo.errors import RolloutFailed, RolloutWaiting

out = Console(highlight=False, markup=False)
err = Console(stderr=True, highlight=False, markup=False)
# with -o json, stdout holds the JSON only
progress = Console(stderr=True, highlight=False, markup=False)

WaitOpt = Annotated[
    bool | None,
    typer.Option(
        "--wait/--no-wait",
        help="Follow the work until it ends (default: yes on a terminal, no otherwise). "
        "Exit code 0: healthy; 6: failed, rolled back or aborted; 8: paused until a person "
        "says go on (`baepo promote`, `baepo approve`); 7: --timeout ran out.",
    ),
]
TimeoutOpt = Annotated[
    float | None,
    typer.Option("--timeout", help="With --wait: give up waiting after this many seconds.", min=0),
]


def to_follow(result: dict[str, Any]) -> bool:
    """Whether ``--wait`` has work to follow after a release request: one it started, or a
    rollout of the same config already in flight (a deploy run again after the first one was
    interrupted waits for that rollout). A no-op ("nothing to deploy") has none."""
    return bool(result["changed"] or result.get("rollout_id"))


def _finish(
    project: Project,
    result: dict[str, Any],
    wait: bool | None,
    timeout: float | None,
    output: Output,
    *,
    undoing: bool = False,
) -> None:
    if wait is None:
        wait = sys.stdout.isatty() and output == Output.text
    client = project.client()
    if output == Output.text:
        style = "" if result["changed"] else "dim"
        out.print(result["message"], style=style)
    if not wait or not to_follow(result):
        if output == Output.json:
            print(json.dumps(result))
        return
    watch = RolloutWatch(result["rollout_id"]) if result.get("rollout_id") else None
    live = sys.stdout.isatty() and output == Output.text
    status = follow(
        client,
        result["app"],
        result["env"],
        out if output == Output.text else progress,
        done=watch or settled,
        timeout=timeout,
        live=live,
        rollout_id=result.get("rollout_id"),
    )
    rollout = None
    if result.get("rollout_id"):
        rollout = client.get(f"/api/v1/rollouts/{result['rollout_id']}")
    if output == Output.json:
        print(json.dumps({**result, "rollout": rollout, "status": status}))
    if rollout is None or watch is None:
        return
    if watch.held is not None:
        raise RolloutWaiting(waiting_text(watch.held, project))
    phase = rollout["phase"]
    if watch.unsettled and output == Output.text:
        err.print(
            f"note: the app has not settled {watch.settle_seconds:g}s after the rollout ended "
            "(instances still starting or stopping): see baepo status",
            style="dim",
            soft_wrap=True,
        )
    if phase == "healthy":
        if output == Output.text:
            out.print(
                f"[green]done[/]: revision {rollout['revision']} serves all traffic "
                f"({rollout['duration_seconds']:.1f}s)",
                markup=True,
            )
        return
    if phase == "aborted" and undoing:
        return  # undo of an in-flight rollout: aborting it was the point
    err.print(f"see {where_to_look(rollout)}", style="dim", soft_wrap=True)
    raise RolloutFailed(failure_text(rollout))


def where_to_look(rollout: dict[str, Any]) -> str:
    """The command that shows more of a failure: the output of what failed."""
    kind = (rollout.get("cause") or {}).get("kind")
    if kind == "gate":
        return "baepo gates for the checks', hooks' and migrations' output, and baepo status"
    if kind == "analysis":
        return "baepo analysis for the measurements, and baepo status"
    number = rollout["revision"]
    return f"baepo status, and baepo logs -r {number} for revision {number}'s output"


def failure_text(rollout: dict[str, Any]) -> str:
    """A rollout that did not end healthy, for the last lines of ``--wait``: its id, phase
    and message, then its cause (kind, summary, evidence lines) when it has one."""
    lines = [f"rollout {rollout['id']} {rollout['phase'].replace('_', ' ')}: {rollout['message']}"]
    if rollout.get("cause"):  # in the words of baepo status and history
        lines.append(cause_text(rollout["cause"], indent="  ").plain)
    return "\n".join(lines)


def waiting_text(rollout: dict[str, Any], project: Project) -> str:
    """What a rollout held for a person waits for, and the commands that answer it."""
    where = f" -e {project.env}"
    if project.file is not None:
        where += f" -f {project.file}"
    head = f"rollout {rollout['id']} (revision {rollout['revision']}) waits for a person"
    if rollout["phase"] == "awaiting_approval":
        return (
            f"{head}: approval\n  to go on:   baepo approve{where}  (an approver)\n"
            f"  to refuse:  baepo reject{where} --reason WHY"
        )
    lines = [f"{head}: {rollout['message']}"]
    if rollout["message"].startswith("paused by"):  # `baepo pause`
        lines.append(f"  to go on:   baepo resume{where}")
    else:
        lines.append(f"  to go on:   baepo promote{where}  (--full: to the end at once)")
    if rollout.get("stable_revision") is not None:
        lines.append(f"  to go back: baepo abort{where}")
    return "\n".join(lines)


def deploy(
    file: FileOpt = None,
    env: EnvOpt = None,
    version: Annotated[
        str | None,
        typer.Option(
            "--version", help="The version to release (overrides the spec).", callback=line_option
        ),
    ] = None,
    message: MessageOpt = "",
    supersede: Annotated[
        bool, typer.Option("--supersede", help="Replace a rollout that is in progress.")
    ] = False,
    override_freeze: Annotated[
        str | None,
        typer.Option(
            "--override-freeze",
            metavar="REASON",
            callback=text_option,
            help="Deploy inside a freeze window anyway, for this reason (needs admin).",
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Check the deploy and show what it would do (revision, config and secret "
            "changes, strategy steps, gates, commands on each host); change nothing.",
        ),
    ] = False,
    wait: WaitOpt = None,
    timeout: TimeoutOpt = None,
    state_dir: StateOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Release the spec: make a revision and roll it out with the spec's strategy.

    Deploying what already runs is a no-op that says so; deploying the same spec again while
    its rollout is in progress (after an interrupted `deploy --wait`, say) follows that rollout
    with `--wait`. While a rollout is in progress a different deploy is refused (exit 5) unless
    `--supersede` replaces it. Inside a freeze window of
    the environment a deploy is refused (exit 5) unless an admin gives `--override-freeze`.
    `--dry-run` refuses what a deploy would refuse (same exit codes) and otherwise prints
    what it would do, exit 0.

    Example: `baepo deploy --version 1.4.1 -m "fix checkout" --wait`,
    `baepo deploy --dry-run --env production`
    """
    project = Project(file, env, state_dir)
    loaded = project.loaded
    result = project.spec_client().post(
        "/api/v1/deploy",
        {
            "spec_yaml": loaded.text,
            "spec_name": loaded.path.name,
            "env": project.env,
            "version": version,
            "message": message,
            "supersede": supersede,
            "override_freeze": override_freeze,
            "dry_run": dry_run,
        },
    )
    if output == Output.text:
        for warning in result.get("warnings", []):
            err.print(f"[yellow]warning[/]: {escape(warning)}", soft_wrap=True, markup=True)
    if dry_run:
        if output == Output.json:
            print(json.dumps(result))
            return
        out.print(result["message"], style="bold" if result.get("preview") else "dim")
        if result.get("preview"):
            out.print(preview_view(result["preview"]))
        return
    _finish(project, result, wait, timeout, output)


def undo(
    to_revision: Annotated[
        int | None,
        typer.Option(
            "--to-revision", help="The revision to go back to (default: the previous).", min=1
        ),
    ] = None,
    file: FileOpt = None,
    env: EnvOpt = None,
    message: MessageOpt = "",
    wait: WaitOpt = None,
    timeout: TimeoutOpt = None,
    state_dir: StateOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Go back: stop a rollout in progress, or roll out a copy of an earlier revision.

    During a rollout, traffic returns to the stable revision at once. Otherwise a new revision
    copying the previous healthy one (or `--to-revision N`) is rolled out with the strategy.

    Example: `baepo undo --wait` or `baepo undo --to-revision 3`
    """
    project = Project(file, env, state_dir)
    result = project.client().post(
        f"/api/v1/apps/{project.app}/undo",
        {"env": project.env, "to_revision": to_revision, "message": message},
    )
    _finish(project, result, wait, timeout, output, undoing=True)


def down(
    file: FileOpt = None,
    env: EnvOpt = None,
    wait: WaitOpt = None,
    timeout: TimeoutOpt = None,
    state_dir: StateOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Stop the app: drain and stop its instances and its router. The history is kept.

    `baepo deploy` starts it again. Example: `baepo down`
    """
    project = Project(file, env, state_dir)
    result = project.client().post(f"/api/v1/apps/{project.app}/down", {"env": project.env})
    _finish(project, result, wait, timeout, output)


def register(app: typer.Typer) -> None:
    app.command(rich_help_panel="Release")(deploy)
    app.command(rich_help_panel="Release")(undo)
    app.command(
        "rollback",
        rich_help_panel="Release",
        help="Same as `baepo undo`. Example: `baepo rollback --to-revision 3 --wait`",
    )(undo)
    app.command(rich_help_panel="Release")(down)
